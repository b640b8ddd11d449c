"""egain-token-operator: keeps eGain OAuth2 access tokens fresh in Kubernetes Secrets."""
