package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"vigil/metrics"
)

// registered returns the names of every metric Vigil's registry describes,
// including vectors with no series yet.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		metrics.Registry.Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if !names["vigil_hub_sessions"] || !names["process_cpu_seconds_total"] {
		t.Fatalf("registry description looks wrong: %d names", len(names))
	}
	return names
}

var metricRef = regexp.MustCompile(`\b((?:vigil|process|go)_[a-z0-9_]+)`)

// checkExpr reports metric names in expr that Vigil does not export. A
// histogram is referred to through its _bucket, _count and _sum series.
func checkExpr(t *testing.T, names map[string]bool, where, expr string) {
	t.Helper()
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		base := name
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suf)
		}
		if !names[name] && !names[base] {
			t.Errorf("%s: %q uses %s, which Vigil does not export", where, expr, name)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestPrometheusRules: the rule file decodes strictly, every rule has a
// severity and a summary, and every metric it names is one Vigil exports.
func TestPrometheusRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/vigil-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("rules: %v", err)
	}
	names := registered(t)
	seen := map[string]bool{}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			switch {
			case r.Alert == "" || r.Expr == "":
				t.Errorf("rule %d of %s lacks alert or expr", n, g.Name)
			case seen[r.Alert]:
				t.Errorf("alert %s twice", r.Alert)
			case !map[string]bool{"critical": true, "warning": true, "info": true}[r.Labels["severity"]]:
				t.Errorf("alert %s: severity %q", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("alert %s has no summary", r.Alert)
			}
			seen[r.Alert] = true
			checkExpr(t, names, r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"VigilReadingsRefused", "VigilAlertDeliveryLag", "VigilPredictorBreakerOpen", "VigilNoSessionsOnNode"} {
		if !seen[want] {
			t.Errorf("no %s rule", want)
		}
	}
}

// TestGrafanaDashboard: the dashboard is JSON Grafana can import, and its
// queries name only metrics Vigil exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/vigil-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard %q (%s) with %d panels", d.Title, d.UID, len(d.Panels))
	}
	names := registered(t)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, names, p.Title, q.Expr)
		}
	}
}

// TestScrapeAndAdapterConfig: the scrape job is named as the rules expect
// and labels namespace and pod, which the adapter rule that feeds the HPA
// needs; the adapter exposes the metric the HPA asks for.
func TestScrapeAndAdapterConfig(t *testing.T) {
	var scrape struct {
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			RelabelConfigs []struct {
				TargetLabel string `yaml:"target_label"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/scrape.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &scrape); err != nil || len(scrape.ScrapeConfigs) != 1 || scrape.ScrapeConfigs[0].JobName != "vigil" {
		t.Fatalf("scrape.yaml: %v %+v", err, scrape)
	}
	targets := map[string]bool{}
	for _, r := range scrape.ScrapeConfigs[0].RelabelConfigs {
		targets[r.TargetLabel] = true
	}
	if !targets["namespace"] || !targets["pod"] {
		t.Errorf("the scrape job must label namespace and pod: %v", targets)
	}
	var adapter struct {
		Rules []struct {
			SeriesQuery string `yaml:"seriesQuery"`
			Name        struct {
				As string `yaml:"as"`
			} `yaml:"name"`
		} `yaml:"rules"`
	}
	if b, err = os.ReadFile("prometheus/adapter-rules.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &adapter); err != nil || len(adapter.Rules) == 0 {
		t.Fatalf("adapter-rules.yaml: %v", err)
	}
	hpa, err := os.ReadFile("k8s/base/vigil-hpa.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := registered(t)
	for _, r := range adapter.Rules {
		checkExpr(t, names, "adapter rule", r.SeriesQuery)
		if !strings.Contains(string(hpa), "name: "+r.Name.As) {
			t.Errorf("the HPA does not use the adapter's metric %s", r.Name.As)
		}
	}
}
