"""The job image (``jobs/Dockerfile``): its content-hash tag, the Docker engine, and the build that both
the kind backend and the local backend's ``docker`` task runtime use."""
