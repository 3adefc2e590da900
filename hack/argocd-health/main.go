// argocd-health judges objects with Argo CD's own health engine, set up as Argo CD's application controller sets it
// up: the resource overrides are read from an argocd-cm ConfigMap by Argo CD's settings manager (over a fake
// clientset holding that ConfigMap), and each object goes through gitops-engine's health.GetResourceHealth with
// util/lua's ResourceHealthOverrides, the call controller/health.go makes. Lua libraries are opened exactly as the
// ConfigMap says (resource.customizations.useOpenLibs.<group_kind>; closed by default).
//
// Usage: argocd-health ARGOCD_CM_YAML < objects.json > results.json
// objects.json is a JSON array of objects; results.json is an array of {"status", "message"} or {"error"}.
// hack/argocd-health.sh builds it in a generated module outside the repo (see there for the versions).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health ARGOCD_CM_YAML < objects.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("reading %s: %v", os.Args[1], err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		fail("parsing %s: %v", os.Args[1], err)
	}
	mgr := settings.NewSettingsManager(context.Background(), fake.NewClientset(&cm), cm.Namespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		fail("Argo CD's settings manager refused %s: %v", os.Args[1], err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var objects []map[string]any
	if err := json.Unmarshal(input, &objects); err != nil {
		fail("stdin is not a JSON array of objects: %v", err)
	}
	healthOverrides := lua.ResourceHealthOverrides(overrides)
	out := make([]result, 0, len(objects))
	for _, obj := range objects {
		status, err := health.GetResourceHealth(&unstructured.Unstructured{Object: obj}, healthOverrides)
		switch {
		case err != nil:
			out = append(out, result{Error: err.Error()})
		case status == nil:
			out = append(out, result{Error: "no health check applies to this object"})
		default:
			out = append(out, result{Status: string(status.Status), Message: status.Message})
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing results: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(2)
}
