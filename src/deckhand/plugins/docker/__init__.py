"""The Docker plugin (bosun's documented Docker plugin): deployments as prediction-server containers behind Traefik."""
