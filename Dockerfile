FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MAPI_EWS_ENV=production
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
RUN pip install . && useradd --system --uid 10001 app
USER app
EXPOSE 8000
CMD ["mapi-ews-admin", "serve", "--host", "0.0.0.0", "--port", "8000"]
