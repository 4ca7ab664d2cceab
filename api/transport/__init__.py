"""The machinery that runs a request, kept apart from the schema it runs (api/graphql).

http.py       the front door of /graphql: credentials, body cap, POST and GET read into one
              GraphQL request, GraphiQL in development
websocket.py  graphql-transport-ws: Strawberry's protocol handler, credentials at
              connection_init, every operation handed to the pipeline
watch.py      closes a WebSocket whose credentials lapse
pipeline.py   the one pipeline every operation passes, whatever carried it
limits.py     parse and validate with the document limits (tokens, depth, aliases, cost), and
              an operation's requested cost
cost.py       the cost model: the ceiling's validation rule, requested and actual costs
budget.py     each caller's budget of query cost: charged, settled, THROTTLED
executor.py   graphql-core's executor, with compiled plans for the fields that allow them
plans.py      those plans: compiled once per document, checked against graphql-core in tests
errors.py     every error leaves coded; unexpected ones are logged and masked
"""
