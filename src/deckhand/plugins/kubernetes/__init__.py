"""The Kubernetes plugin: model images built in the cluster by Kaniko, served by a
Deployment + Service + Ingress (optionally HPA and PDB) per deployment."""
