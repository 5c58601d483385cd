# fabhub image, used by docker-compose.yml for the web, worker and beat services.
# See docs/deploy.md.
FROM python:3.11-slim-bookworm

# PYTHONPATH=/app: the source tree in /app is imported first, so templates and static
# files are found next to the code whatever the installed wheel includes.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app \
    FABHUB_DATA_DIR=/data

# git runs every repository operation; git-lfs for repositories that use it; the workers
# slice print jobs' meshes with PrusaSlicer's command line (FABHUB_SLICER_COMMAND, default
# prusa-slicer; Debian bookworm's 2.5 package, the one scripts/ensure-test-tools installs
# for the suite; it slices without a display). Without it labs take G-code only.
# libgl1 and libx11-6: OpenCASCADE's wheel (cadquery-ocp-novtk, STEP analysis) links
# against them though it draws nothing; PrusaSlicer pulls them in too, named here so that
# dropping the slicer does not break STEP files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git git-lfs ca-certificates prusa-slicer libgl1 libx11-6 \
    && rm -rf /var/lib/apt/lists/* \
    && git lfs install --system --skip-repo \
    && prusa-slicer --help >/dev/null

WORKDIR /app

# Only what the hub needs at run time (no .venv, var/ or .git from a developer's
# checkout). A new top-level package must be added here and in pyproject.toml.
COPY pyproject.toml LICENSE README.md* ./
COPY manage.py ./
COPY hub ./hub
COPY designs ./designs
COPY machines ./machines

# The "deploy" extra brings gunicorn. The bytecode is compiled here: at run time /app is
# not writable (and PYTHONDONTWRITEBYTECODE), so every process that starts (gunicorn
# workers, Celery workers, management commands) would otherwise compile the project's
# modules again. The pre-receive hook (designs/hooks/pre-receive) is plain sh with
# coreutils' timeout and sed, both in the base image.
RUN pip install --no-cache-dir "." \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q hub designs machines

# Repositories, uploads and collected static files live under /data (a volume).
RUN useradd --system --uid 1000 --user-group --create-home --home-dir /home/fabhub fabhub \
    && mkdir -p /data \
    && chown fabhub:fabhub /data
USER fabhub

EXPOSE 8000

CMD ["gunicorn", "hub.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "300"]
