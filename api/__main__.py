"""`python -m api`: the same command line as `mapi-ews-admin`."""

from api.cli import main

if __name__ == "__main__":
    main()
