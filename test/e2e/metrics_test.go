package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/test/labtest"
)

// The lab's virt controllers and node agents serve Prometheus metrics
// under upstream KubeVirt's names, over HTTPS, only to a caller the API
// server authenticates and allows get on /metrics. During a migration
// slowed to 16 MiB/s the source node agent's transfer figures move from
// one scrape to the next and the controller counts the migration as
// running; afterwards the controller reports it succeeded.
func TestMetrics(t *testing.T) {
	l := sharedLab(t)
	status := labStatus(t, l.Dir)
	agentURL := metricsURL(t, status, sourceCluster, lab.KindNode, "ocp7-worker-0")
	controllerURL := metricsURL(t, status, sourceCluster, lab.KindController, "virt-controller")
	token := l.metricsToken(t, sourceCluster, install.MetricsReader.ServiceAccount)

	t.Run("RefusesWithoutAToken", func(t *testing.T) {
		if code, _ := scrape(t, controllerURL, ""); code != http.StatusUnauthorized {
			t.Errorf("no token: HTTP %d, want 401", code)
		}
		if code, _ := scrape(t, strings.TrimSuffix(agentURL, "/metrics")+"/healthz", ""); code != http.StatusUnauthorized {
			t.Errorf("/healthz without a token: HTTP %d, want 401", code)
		}
		// Authenticated, but not given the metrics' URLs.
		if code, _ := scrape(t, agentURL, l.metricsToken(t, sourceCluster, "default")); code != http.StatusForbidden {
			t.Errorf("the token of an account without get on /metrics: HTTP %d, want 403", code)
		}
	})
	t.Run("HealthWithAToken", func(t *testing.T) {
		if code, body := scrape(t, strings.TrimSuffix(agentURL, "/metrics")+"/readyz", token); code != http.StatusOK || body != "ok" {
			t.Errorf("/readyz: HTTP %d %q", code, body)
		}
	})

	restore := l.SetMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"16Mi"}`)
	defer restore()
	spec := vmSpec{name: "measured", namespace: "metrics", memory: "128Mi"}
	l.createVM(t, sourceCluster, spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	l.WaitGuestReady(t, sourceCluster, spec.namespace, spec.name, 90*time.Second)
	node := l.VMI(t, sourceCluster, spec.namespace, spec.name).Status.NodeName
	sourceAgentURL := metricsURL(t, status, sourceCluster, lab.KindNode, node)
	// The guest's QEMU, as virt-handler reports it: memory and vCPU time.
	_, body := scrape(t, sourceAgentURL, token)
	vmiSeries := fmt.Sprintf(`name="%s",namespace="%s",node="%s"`, spec.name, spec.namespace, node)
	resident := must(sample(body, "kubevirt_vmi_memory_resident_bytes{"+vmiSeries+"}"))
	domain := must(sample(body, "kubevirt_vmi_memory_domain_bytes{"+vmiSeries+"}"))
	vcpu := must(sample(body, `kubevirt_vmi_vcpu_seconds_total{id="0",`+vmiSeries+`,state="running"}`))
	if resident <= 0 || domain != 128<<20 || vcpu <= 0 {
		t.Errorf("the VMI's figures: resident %v bytes, domain %v bytes (want 128 MiB), vCPU 0 %v s", resident, domain, vcpu)
	}
	name := l.migrate(t, sourceCluster, spec.namespace, spec.name)

	// The exposition format prints labels sorted by name.
	series := fmt.Sprintf(`{name="%s",namespace="%s",node="%s"}`, spec.name, spec.namespace, node)
	var processed []float64
	var running float64
	labtest.WaitFor(t, "two scrapes of the source agent with the migration's figures", 2*time.Minute, func() (bool, string) {
		_, body := scrape(t, sourceAgentURL, token)
		if v, ok := sample(body, "kubevirt_vmi_migration_data_processed_bytes"+series); ok && (len(processed) == 0 || v != processed[len(processed)-1]) {
			processed = append(processed, v)
			_, controller := scrape(t, controllerURL, token)
			running = max(running, must(sample(controller, "kubevirt_vmi_migrations_in_running_phase")))
		}
		return len(processed) >= 2, fmt.Sprintf("data processed so far %v", processed)
	})
	if processed[1] <= processed[0] {
		t.Errorf("kubevirt_vmi_migration_data_processed_bytes did not grow: %v", processed)
	}
	if running < 1 {
		t.Errorf("kubevirt_vmi_migrations_in_running_phase stayed %v during the migration", running)
	}
	if final := l.WaitVMIMFinal(t, sourceCluster, spec.namespace, name, 3*time.Minute); final.Status.Phase != "Succeeded" {
		t.Fatalf("migration %s: %s", name, final.Status.Phase)
	}
	labtest.WaitFor(t, "the controller to report the migration succeeded", 30*time.Second, func() (bool, string) {
		_, body := scrape(t, controllerURL, token)
		v, ok := sample(body, fmt.Sprintf(`kubevirt_vmi_migration_succeeded{namespace="%s",vmi="%s",vmim="%s"}`, spec.namespace, spec.name, name))
		succeeded := sumSeries(body, `kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_count{phase="Succeeded"}`)
		return ok && v == 1 && succeeded >= 1, fmt.Sprintf("succeeded %v, phase transitions to Succeeded %v", v, succeeded)
	})
	t.Logf("the source node agent's data processed over two scrapes: %v bytes", processed)

	// The same guest then moves to ocp1 through the toolkit: its metrics
	// show the Plan executing and bytes moving, then the outcome; both
	// synchronization controllers count their calls with each other.
	t.Run("ToolkitAndSynchronization", func(t *testing.T) {
		l.runConnect(t)
		l.EnsureNamespace(t, targetCluster, spec.namespace)
		toolkitURL := metricsURL(t, status, targetCluster, lab.KindController, lab.ToolkitControllerName)
		targetToken := l.metricsToken(t, targetCluster, install.MetricsReader.ServiceAccount)
		migrated := make(chan error, 1)
		go func() {
			_, _, err := labtest.RunCCLM(t, 5*time.Minute, "migrate", spec.name, "--source", sourceCluster, "--target", targetCluster,
				"-n", spec.namespace, "--kubeconfig", l.Kubeconfig, "-o", "json")
			migrated <- err
		}()
		// mtv_* labels, sorted by name: mode, provider, [status,] target.
		executing := `mtv_plans_status{mode="Live",provider="openshift",status="Executing",target="Local"}`
		var transferred float64
		labtest.WaitFor(t, "the toolkit to report an executing Plan that moved bytes", 2*time.Minute, func() (bool, string) {
			_, body := scrape(t, toolkitURL, targetToken)
			transferred = sumSeries(body, "mtv_migration_data_transferred_bytes")
			return must(sample(body, executing)) >= 1 && transferred > 0, fmt.Sprintf("executing %v, bytes %v", must(sample(body, executing)), transferred)
		})
		if err := <-migrated; err != nil {
			t.Fatalf("cclm migrate %s to %s: %v", spec.name, targetCluster, err)
		}
		labtest.WaitFor(t, "the toolkit to count the migration Succeeded", 30*time.Second, func() (bool, string) {
			_, body := scrape(t, toolkitURL, targetToken)
			succeeded := sumSeries(body, `mtv_migrations_status_total{mode="Live",provider="openshift",status="Succeeded",target="Local"}`)
			vms := sumSeries(body, `mtv_migrated_vms_total{mode="Live",provider="openshift",status="Succeeded",target="Local"}`)
			return succeeded >= 1 && vms >= 1, fmt.Sprintf("migrations succeeded %v, VMs %v", succeeded, vms)
		})
		for cluster, token := range map[string]string{sourceCluster: token, targetCluster: targetToken} {
			_, body := scrape(t, metricsURL(t, status, cluster, lab.KindController, lab.SyncControllerName), token)
			outgoing, incoming := sumSeries(body, `cclm_synchronization_calls_total{direction="outgoing"`), sumSeries(body, `cclm_synchronization_calls_total{direction="incoming"`)
			if outgoing < 1 || incoming < 1 || sumSeries(body, "cclm_synchronization_peers") < 1 {
				t.Errorf("%s's synchronization controller: %v calls out, %v in, peers %v; want both directions and a peer", cluster, outgoing, incoming, sumSeries(body, "cclm_synchronization_peers"))
			}
		}
		t.Logf("the toolkit reported %v bytes transferred while the Plan executed", transferred)
	})
}

// sumSeries adds the values of every sample whose series starts with
// prefix (a metric name, or a name and its first labels).
func sumSeries(body, prefix string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, prefix) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(prefix):]
		if !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, ",") && !strings.HasPrefix(rest, "}") {
			continue // another metric whose name starts with prefix
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// metricsURL is where the lab says a component serves /metrics.
func metricsURL(t *testing.T, status *lab.Status, cluster, kind, name string) string {
	t.Helper()
	for _, c := range status.Components {
		if c.Cluster == cluster && c.Kind == kind && c.Name == name {
			if c.MetricsURL == "" {
				t.Fatalf("lab status lists no metrics URL for %s %s of %s", kind, name, cluster)
			}
			return c.MetricsURL
		}
	}
	t.Fatalf("lab status lists no %s %s in %s", kind, name, cluster)
	return ""
}

// metricsToken is a token of account in the virt namespace, as
// `kubectl create token cclm-metrics-reader` gives the lab's metrics
// reader one.
func (l *labEnv) metricsToken(t *testing.T, cluster, account string) string {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(l.RESTConfig(t, cluster))
	if err != nil {
		t.Fatal(err)
	}
	request, err := clientset.CoreV1().ServiceAccounts(virtNamespace).CreateToken(context.Background(), account,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return request.Status.Token
}

// scrape GETs url with token (none if ""), trusting the self-signed
// certificate; it returns the status code and the body.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the components' certificates are self-signed, as kube-controller-manager's
	}}
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		request.Header.Set("Authorization", "Bearer "+token)
	}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	return response.StatusCode, string(body)
}

// sample is the value of the series (name and labels exactly as the
// exposition format prints them) in body.
func sample(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if value, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func must(v float64, _ bool) float64 { return v }
