package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFile: the multi-node compose file has every part, each
// healthchecked, the Vigil nodes read-only and waiting for what they need,
// and a grace period longer than the drain.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       map[string]any `yaml:"build"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			ReadOnly    bool                                  `yaml:"read_only"`
			StopGrace   string                                `yaml:"stop_grace_period"`
			Environment map[string]string                     `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "redis", "predictor", "vigil-1", "vigil-2", "lb"} {
		s, ok := f.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	for _, name := range []string{"vigil-1", "vigil-2"} {
		s := f.Services[name]
		if !s.ReadOnly || s.StopGrace == "" {
			t.Errorf("%s: read_only %v, stop_grace_period %q", name, s.ReadOnly, s.StopGrace)
		}
		for _, dep := range []string{"postgres", "redis", "predictor"} {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s must wait for %s to be healthy", name, dep)
			}
		}
		for _, k := range []string{"VIGIL_DB", "VIGIL_REDIS_URL", "VIGIL_PREDICTOR_ADDR", "VIGIL_JWT_SECRET", "VIGIL_DRAIN_DELAY"} {
			if s.Environment[k] == "" {
				t.Errorf("%s: %s not set", name, k)
			}
		}
	}
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server vigil-1:8080", "server vigil-2:8080", "proxy_set_header Upgrade $http_upgrade",
		"proxy_set_header Connection $connection_upgrade", "proxy_read_timeout 1h",
		"client_max_body_size 5m;", "proxy_set_header X-Forwarded-For $remote_addr;", "location = /metrics {"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
}

// TestDockerfiles: multi-stage builds whose final stage runs as a non-root
// user, Vigil's on a shell-less base with a static binary.
func TestDockerfiles(t *testing.T) {
	tests := []struct {
		file      string
		runtime   string // the final FROM image's prefix
		needFlags []string
	}{
		{"Dockerfile", "gcr.io/distroless/static", []string{"CGO_ENABLED=0", "-trimpath", "USER 65532", "HEALTHCHECK", "/vigil\", \"probe\""}},
		{"predictor.Dockerfile", "python:3.11-slim", []string{"requirements.txt", "predictor.train", "USER 10001", "HEALTHCHECK"}},
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`)
	for _, tt := range tests {
		b, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		froms := from.FindAllStringSubmatch(s, -1)
		if len(froms) < 2 {
			t.Errorf("%s: %d stages, want a multi-stage build", tt.file, len(froms))
			continue
		}
		if last := froms[len(froms)-1][1]; !strings.HasPrefix(last, tt.runtime) {
			t.Errorf("%s: runtime image %s, want %s…", tt.file, last, tt.runtime)
		}
		for _, f := range tt.needFlags {
			if !strings.Contains(s, f) {
				t.Errorf("%s lacks %q", tt.file, f)
			}
		}
		if strings.Contains(s, "USER root") || strings.Contains(s, "USER 0") {
			t.Errorf("%s runs as root", tt.file)
		}
	}
}
