# JupyterLab on the kafkalab notebooks, for docker-compose.yml (the broker runs in its own container).
FROM python:3.11-slim
WORKDIR /lab
COPY pyproject.toml README.md ./
COPY kafkalab ./kafkalab
RUN pip install --no-cache-dir .
COPY notebooks ./notebooks
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root", \
     "--ServerApp.root_dir=/lab/notebooks"]
