# The production image: exactly what uv.lock pins (versions and hashes), without the dev tools.
# Built in one stage with uv, run from another that holds only the virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY tools/uv-requirements.txt tools/
RUN pip install --require-hashes --no-deps -r tools/uv-requirements.txt
# The dependencies first, in a layer of their own that changes only with the lock.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY api ./api
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH MAPI_EWS_ENV=production
COPY --from=build /app/.venv /app/.venv
RUN useradd --system --uid 10001 app
WORKDIR /app
USER app
EXPOSE 8000
CMD ["mapi-ews-admin", "serve", "--host", "0.0.0.0", "--port", "8000"]
