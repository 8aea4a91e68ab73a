// Package deploy holds what an operator needs to run Vigil (container files,
// Kubernetes manifests, Prometheus rules, a Grafana dashboard); it has no
// code, only the tests that check those files offline.
package deploy
