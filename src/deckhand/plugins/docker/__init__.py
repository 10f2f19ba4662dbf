"""The Docker plugin (seed 000): deployments as prediction-server containers behind Traefik."""
