package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// object is one manifest document, decoded strictly into its official type.
type object struct {
	file string
	kind string
	name string
	obj  any
}

// kinds maps apiVersion/kind to a new value of the k8s.io/api type; a kind
// not listed fails the test, so a typo in apiVersion cannot pass.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                           func() any { return &appsv1.StatefulSet{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Namespace":                                  func() any { return &corev1.Namespace{} },
	"networking.k8s.io/v1/Ingress":                  func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &networkingv1.NetworkPolicy{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":        func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": nil, // checked apart
}

// load decodes every document of every YAML file under deploy/k8s strictly
// (unknown or misspelt fields fail) into the Kubernetes API types, with no
// network: the schemas are the types compiled into the test.
func load(t *testing.T) []object {
	t.Helper()
	var out []object
	err := filepath.WalkDir("k8s", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				return fmt.Errorf("%s #%d: %w", path, i, err)
			}
			key := head.APIVersion + "/" + head.Kind
			mk, known := kinds[key]
			if !known {
				return fmt.Errorf("%s #%d: unknown kind %s", path, i, key)
			}
			if mk == nil {
				continue
			}
			obj := mk()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				return fmt.Errorf("%s #%d (%s): %w", path, i, key, err)
			}
			out = append(out, object{file: path, kind: head.Kind, name: head.Metadata.Name, obj: obj})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func find[T any](objs []object, kind, name string) T {
	for _, o := range objs {
		if o.kind == kind && o.name == name && strings.Contains(o.file, "base") {
			return o.obj.(T)
		}
	}
	var zero T
	return zero
}

// TestManifestsDecodeStrictly: every manifest is a valid object of its kind.
func TestManifestsDecodeStrictly(t *testing.T) {
	if n := len(load(t)); n < 15 {
		t.Fatalf("only %d manifests under deploy/k8s", n)
	}
}

// TestKustomizationsListExistingFiles: every resource a kustomization names
// exists, and every base manifest is in the base kustomization.
func TestKustomizationsListExistingFiles(t *testing.T) {
	for _, k := range []string{"k8s/base", "k8s/overlays/dev", "k8s/overlays/production"} {
		b, err := os.ReadFile(filepath.Join(k, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var kz struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(b, &kz); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		listed := map[string]bool{}
		for _, r := range kz.Resources {
			listed[r] = true
			if _, err := os.Stat(filepath.Join(k, r)); err != nil {
				t.Errorf("%s lists %s: %v", k, r, err)
			}
		}
		if k == "k8s/base" {
			files, _ := filepath.Glob("k8s/base/*.yaml")
			for _, f := range files {
				if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
					t.Errorf("k8s/base/%s is not in the base kustomization", b)
				}
			}
		}
	}
}

// TestDeploymentInvariants checks what an orchestrator needs of each
// Deployment: probes, resources, a locked-down security context, a grace
// period that covers the drain, and a PDB, Service and HPA that select it.
func TestDeploymentInvariants(t *testing.T) {
	objs := load(t)
	tests := []struct {
		name         string
		minReplicas  int32
		readyPath    string
		livePath     string
		customMetric bool
		minGraceSecs int64
	}{
		{"vigil", 2, "/readyz", "/healthz", true, 10 + 25 + 5 + 5}, // drain, shutdown, pool release, trace flush
		{"vigil-predictor", 2, "", "", false, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := find[*appsv1.Deployment](objs, "Deployment", tt.name)
			if d == nil {
				t.Fatalf("no Deployment %s in base", tt.name)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < tt.minReplicas {
				t.Errorf("replicas %v, want ≥ %d", d.Spec.Replicas, tt.minReplicas)
			}
			pod := d.Spec.Template.Spec
			if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= tt.minGraceSecs {
				t.Errorf("terminationGracePeriodSeconds %v, want > %d (drain delay + shutdown timeout)", g, tt.minGraceSecs)
			}
			if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("pod securityContext must set runAsNonRoot")
			}
			for _, c := range pod.Containers {
				if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.StartupProbe == nil {
					t.Errorf("%s: readiness, liveness and startup probes are required", c.Name)
				}
				if tt.readyPath != "" && (c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != tt.readyPath) {
					t.Errorf("%s: readiness must be GET %s", c.Name, tt.readyPath)
				}
				if tt.livePath != "" && (c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != tt.livePath) {
					t.Errorf("%s: liveness must be GET %s", c.Name, tt.livePath)
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := c.Resources.Requests[r]; !ok {
						t.Errorf("%s: no %s request", c.Name, r)
					}
					if _, ok := c.Resources.Limits[r]; !ok {
						t.Errorf("%s: no %s limit", c.Name, r)
					}
				}
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Errorf("%s: no securityContext", c.Name)
				case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
					t.Errorf("%s: root filesystem must be read-only", c.Name)
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Errorf("%s: privilege escalation must be off", c.Name)
				case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
					t.Errorf("%s: capabilities must drop ALL", c.Name)
				}
			}

			podLabels := labels.Set(d.Spec.Template.Labels)
			sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
			if !sel.Matches(podLabels) {
				t.Errorf("the Deployment's selector does not match its pods")
			}
			svc := find[*corev1.Service](objs, "Service", tt.name)
			if svc == nil || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				t.Errorf("no Service selecting %s's pods", tt.name)
			}
			if tt.name == "vigil" {
				pdb := find[*policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget", tt.name)
				if pdb == nil || pdb.Spec.Selector == nil || !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
					t.Errorf("no PodDisruptionBudget selecting %s's pods", tt.name)
				} else if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("PDB maxUnavailable %v, want 1: one pod's boards moving at a time, and drains never blocked", pdb.Spec.MaxUnavailable)
				}
				np := find[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", tt.name)
				if np == nil || !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(podLabels) {
					t.Errorf("no NetworkPolicy for %s's pods", tt.name)
				}
			}
			hpa := find[*autoscalingv2.HorizontalPodAutoscaler](objs, "HorizontalPodAutoscaler", tt.name)
			if hpa == nil || hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != tt.name {
				t.Fatalf("no HPA scaling Deployment %s", tt.name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < tt.minReplicas {
				t.Errorf("HPA minReplicas %v, want ≥ %d", hpa.Spec.MinReplicas, tt.minReplicas)
			}
			var cpu, custom bool
			for _, m := range hpa.Spec.Metrics {
				cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU)
				custom = custom || m.Type == autoscalingv2.PodsMetricSourceType
			}
			if !cpu || custom != tt.customMetric {
				t.Errorf("HPA metrics: cpu %v, custom %v (want custom %v)", cpu, custom, tt.customMetric)
			}
		})
	}
}
