package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// The toolkit's per-VM pipeline (its contract): its finest steps (the
// tasks) in order, the task whose Task.Progress counts bytes and the
// annotations it carries, and a VM's phases at the end.
var pipelineSteps = toolkit.Tasks

const (
	migrateStep         = toolkit.TaskMigrate
	annotationRemaining = toolkit.AnnotationRemaining
	annotationDirtyRate = toolkit.AnnotationDirtyRate
	annotationIteration = toolkit.AnnotationIteration
	annotationDowntime  = toolkit.AnnotationDowntime
)

// Results of a VM, and of the whole command, in -o json.
const (
	resultSucceeded  = "Succeeded"
	resultFailed     = "Failed"
	resultCanceled   = "Canceled"
	resultNotReady   = "PlanNotReady"
	resultNotStarted = "NotStarted"
	resultIncomplete = "Incomplete"
)

type migrateFlags struct {
	pair                       pairFlags
	namespace, targetNamespace string
	output                     string
	readyTimeout, timeout      time.Duration
	poll                       time.Duration
	// attach names a Migration to follow instead of making one.
	attach string
}

func newMigrateCommand() *cobra.Command {
	var flags migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate (VM... | --attach MIGRATION) --source CONTEXT --target CONTEXT [-n NAMESPACE] [--target-namespace NAMESPACE]",
		Short: "Live-migrate running VMs from the source cluster to the target, through the target's migration toolkit",
		Long: "migrate makes the network and storage maps if needed (NetworkMap and StorageMap <source>-default:\n" +
			"pod to pod, each storage class to the same on the target, else to its default), a Plan of type live\n" +
			"and, once the toolkit's preflight finds it Ready, a Migration; it follows each VM's steps with\n" +
			"bytes, rate and ETA, and exits 0 only if every VM moved. Ctrl-C asks whether to cancel\n" +
			"(without a terminal it cancels); SIGTERM or SIGHUP detaches, leaving the migration running,\n" +
			"and --attach follows it again. Run `cclm connect` first.",
		Args: func(cmd *cobra.Command, args []string) error {
			if flags.attach != "" {
				if len(args) > 0 {
					return fmt.Errorf("--attach follows an existing Migration: name no VMs with it (got %s)", strings.Join(args, " "))
				}
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(flags.output); err != nil {
				return err
			}
			return runMigrate(cmd, flags, args)
		},
	}
	flags.pair.add(cmd, "toolkit-namespace")
	cmd.Flags().StringVarP(&flags.namespace, "namespace", "n", "", "the VMs' namespace on the source (default: the source context's, else default)")
	cmd.Flags().StringVar(&flags.targetNamespace, "target-namespace", "", "namespace the VMs go to on the target (default: the same as on the source)")
	cmd.Flags().DurationVar(&flags.readyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for the Plan to be Ready")
	cmd.Flags().DurationVar(&flags.timeout, "timeout", 30*time.Minute, "how long to follow the migration; the toolkit's own deadlines end it sooner if it hangs")
	cmd.Flags().DurationVar(&flags.poll, "poll", 500*time.Millisecond, "how often to read the migration's status")
	_ = cmd.Flags().MarkHidden("poll")
	cmd.Flags().StringVar(&flags.attach, "attach", "", "follow this existing Migration ([NAMESPACE/]NAME on the target, default namespace the toolkit's) instead of making one")
	outputFlag(cmd, &flags.output)
	return cmd
}

// migrateJSON is `cclm migrate -o json`'s document.
type migrateJSON struct {
	Source    string        `json:"source"`
	Target    string        `json:"target"`
	Plan      string        `json:"plan"`
	Migration string        `json:"migration,omitempty"`
	Result    string        `json:"result"`
	Error     string        `json:"error,omitempty"`
	Problems  []planProblem `json:"problems,omitempty"`
	VMs       []vmResult    `json:"vms"`
}

// vmResult is one VM's outcome.
type vmResult struct {
	Name            string     `json:"name"`
	Namespace       string     `json:"namespace"`
	Result          string     `json:"result"`
	Started         *time.Time `json:"started,omitempty"`
	Completed       *time.Time `json:"completed,omitempty"`
	DurationSeconds float64    `json:"durationSeconds,omitempty"`
	DowntimeMs      *int64     `json:"downtimeMs,omitempty"`
	Bytes           int64      `json:"bytes"`
	Error           string     `json:"error,omitempty"`
}

// planProblem is a Plan condition that keeps it from being Ready.
type planProblem struct {
	Type     string `json:"type"`
	Category string `json:"category"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message"`
}

func runMigrate(cmd *cobra.Command, flags migrateFlags, names []string) error {
	out := cmd.OutOrStdout()
	progress := out
	if flags.output == "json" {
		progress = cmd.ErrOrStderr()
	}
	doc := migrateJSON{Source: flags.pair.source, Target: flags.pair.target, Result: resultNotStarted}
	err := migrate(cmd.Context(), flags, names, progress, &doc)
	if err != nil && doc.Error == "" {
		doc.Error = err.Error()
	}
	if flags.output == "json" {
		if doc.VMs == nil {
			doc.VMs = []vmResult{}
		}
		if perr := printJSON(out, doc); perr != nil && err == nil {
			err = perr
		}
	} else if doc.Migration != "" {
		fmt.Fprintln(out)
		printResults(out, doc.VMs)
	}
	return err
}

// migrate does the work of `cclm migrate`, filling doc as it goes.
func migrate(ctx context.Context, flags migrateFlags, names []string, progress io.Writer, doc *migrateJSON) error {
	if flags.attach != "" {
		return attach(ctx, flags, progress, doc)
	}
	for _, name := range names {
		doc.VMs = append(doc.VMs, vmResult{Name: name, Result: resultNotStarted})
	}
	if dup := firstDuplicate(names); dup != "" {
		return fmt.Errorf("VM %s is named twice", dup)
	}
	pair, err := flags.pair.load()
	if err != nil {
		return err
	}
	namespace := pair.vmNamespace(flags.namespace)
	targetNamespace := flags.targetNamespace
	if targetNamespace == "" {
		targetNamespace = namespace
	}
	for i := range doc.VMs {
		doc.VMs[i].Namespace = namespace
	}

	provider, _, err := pair.sourceAsToolkit(ctx)
	if err != nil {
		return err
	}
	vms := make([]kubevirtv1.VirtualMachine, len(names))
	for i, name := range names {
		if err := pair.sourceClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &vms[i]); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("VM %s/%s is not on %s: check the name and -n", namespace, name, pair.sourceName)
			}
			return fmt.Errorf("read VM %s/%s on %s: %w", namespace, name, pair.sourceName, err)
		}
	}

	maps, err := connect.PlanMaps(ctx, pair.sourceClient, pair.targetClient, provider, vms)
	if err != nil {
		return err
	}
	steps, err := maps.Save(ctx, pair.targetClient)
	if err != nil {
		return err
	}
	for _, s := range steps {
		s.Cluster = pair.targetName
		printStep(progress, s)
	}

	plan := newPlan(pair.sourceName, provider, maps, vms, targetNamespace)
	if err := pair.targetClient.Create(ctx, plan); err != nil {
		return fmt.Errorf("create the Plan on %s: %w", pair.targetName, err)
	}
	doc.Plan = plan.Namespace + "/" + plan.Name
	printStep(progress, connect.Step{Cluster: pair.targetName, Object: "Plan " + doc.Plan, Outcome: connect.Created,
		Detail: fmt.Sprintf("live, %d VM(s), %s -> %s", len(vms), namespace, targetNamespace)})

	fmt.Fprintf(progress, "waiting up to %s for the Plan to be Ready (the toolkit runs its preflight checks)\n", flags.readyTimeout)
	problems, err := waitPlanReady(ctx, pair.targetClient, plan, flags.readyTimeout, flags.poll)
	if err != nil || len(problems) > 0 {
		// Nothing ran: the Plan goes, so that failed attempts leave no
		// Plans behind (the maps stay, for the next attempt).
		deleted := deletePlan(ctx, pair.targetClient, plan)
		if err != nil {
			return fmt.Errorf("%w; %s, nothing was migrated", err, deleted)
		}
		doc.Result, doc.Problems = resultNotReady, problems
		printProblems(progress, problems)
		doc.Error = fmt.Sprintf("Plan %s is not Ready: %d problem(s)", doc.Plan, len(problems))
		return fmt.Errorf("%s; fix them, then run cclm migrate again (`cclm preflight` shows the same checks); %s, nothing was migrated", doc.Error, deleted)
	}
	fmt.Fprintln(progress, "the Plan is Ready")

	migration := &forkliftv1beta1.Migration{
		ObjectMeta: metav1.ObjectMeta{Namespace: plan.Namespace, GenerateName: plan.Name + "-"},
		Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: plan.Name, Namespace: plan.Namespace}},
	}
	if err := pair.targetClient.Create(ctx, migration); err != nil {
		return fmt.Errorf("create the Migration on %s: %w", pair.targetName, err)
	}
	doc.Migration = migration.Namespace + "/" + migration.Name
	printStep(progress, connect.Step{Cluster: pair.targetName, Object: "Migration " + doc.Migration, Outcome: connect.Created})
	return followMigration(ctx, flags, pair, plan, migration, progress, doc)
}

// attach follows the existing Migration flags.attach names, as migrate
// follows the one it makes.
func attach(ctx context.Context, flags migrateFlags, progress io.Writer, doc *migrateJSON) error {
	pair, err := flags.pair.load()
	if err != nil {
		return err
	}
	namespace, name, found := strings.Cut(flags.attach, "/")
	if !found {
		namespace, name = flags.pair.toolkitNamespace, flags.attach
	}
	migration := &forkliftv1beta1.Migration{}
	if err := pair.targetClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, migration); err != nil {
		return fmt.Errorf("--attach %s: read Migration %s/%s on %s: %w", flags.attach, namespace, name, pair.targetName, err)
	}
	plan := &forkliftv1beta1.Plan{}
	planKey := client.ObjectKey{Namespace: cmp.Or(migration.Spec.Plan.Namespace, namespace), Name: migration.Spec.Plan.Name}
	if err := pair.targetClient.Get(ctx, planKey, plan); err != nil {
		return fmt.Errorf("--attach %s: read the Migration's Plan %s on %s: %w", flags.attach, planKey, pair.targetName, err)
	}
	doc.Plan, doc.Migration = planKey.String(), namespace+"/"+name
	doc.VMs = vmResults(plan.Spec.VMs, nil)
	fmt.Fprintf(progress, "following Migration %s of Plan %s on %s\n", doc.Migration, doc.Plan, pair.targetName)
	return followMigration(ctx, flags, pair, plan, migration, progress, doc)
}

// followMigration follows migration of plan to its end and fills doc with
// the VMs' results; an error unless every VM succeeded.
func followMigration(ctx context.Context, flags migrateFlags, pair *clusterPair, plan *forkliftv1beta1.Plan, migration *forkliftv1beta1.Migration, progress io.Writer, doc *migrateJSON) error {
	f := &follower{
		c:           pair.targetClient,
		key:         client.ObjectKeyFromObject(migration),
		vms:         plan.Spec.VMs,
		render:      newRenderer(progress),
		interactive: isTerminal(os.Stdin) && isTerminal(progress),
		stdin:       os.Stdin,
		poll:        flags.poll,
		timeout:     flags.timeout,
		reattach: fmt.Sprintf("cclm migrate --attach %s/%s --source %s --target %s",
			migration.Namespace, migration.Name, pair.sourceName, pair.targetName),
	}
	final, err := f.follow(context.WithoutCancel(ctx))
	doc.VMs = vmResults(plan.Spec.VMs, final)
	doc.Result = overallResult(doc.VMs)
	if err != nil {
		doc.Result = resultIncomplete
		return err
	}
	if doc.Result != resultSucceeded {
		return fmt.Errorf("migration %s: %s (see kubectl --context %s get migration %s -n %s -o yaml)",
			doc.Migration, strings.ToLower(doc.Result), pair.targetName, migration.Name, migration.Namespace)
	}
	return nil
}

func firstDuplicate(names []string) string {
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return n
		}
		seen[n] = true
	}
	return ""
}

// newPlan is the live Plan of vms from the source's Provider to host.
func newPlan(source string, provider *forkliftv1beta1.Provider, maps *connect.Maps, vms []kubevirtv1.VirtualMachine, targetNamespace string) *forkliftv1beta1.Plan {
	names := make([]string, len(vms))
	planVMs := make([]forkliftv1beta1.PlanVM, len(vms))
	for i, vm := range vms {
		names[i] = vm.Name
		planVMs[i] = forkliftv1beta1.PlanVM{Ref: forkliftv1beta1.Ref{ID: string(vm.UID), Name: vm.Name, Namespace: vm.Namespace}}
	}
	prefix := source + "-" + vms[0].Name
	if len(prefix) > 50 {
		prefix = prefix[:50]
	}
	return &forkliftv1beta1.Plan{
		ObjectMeta: metav1.ObjectMeta{Namespace: provider.Namespace, GenerateName: strings.TrimRight(prefix, "-.") + "-"},
		Spec: forkliftv1beta1.PlanSpec{
			Description: "cclm migrate " + strings.Join(names, " ") + " from " + source,
			Type:        forkliftv1beta1.MigrationLive,
			Provider: forkliftv1beta1.ProviderPair{
				Source:      corev1.ObjectReference{Name: provider.Name, Namespace: provider.Namespace},
				Destination: corev1.ObjectReference{Name: connect.HostProvider, Namespace: provider.Namespace},
			},
			Map: forkliftv1beta1.PlanMap{
				Network: corev1.ObjectReference{Name: maps.Network.Name, Namespace: maps.Network.Namespace},
				Storage: corev1.ObjectReference{Name: maps.Storage.Name, Namespace: maps.Storage.Namespace},
			},
			TargetNamespace: targetNamespace,
			VMs:             planVMs,
		},
	}
}

// lifecycleConditions are a Plan's conditions that are not findings.
var lifecycleConditions = []string{forkliftv1beta1.ConditionReady, forkliftv1beta1.ConditionExecuting, forkliftv1beta1.ConditionRunning,
	forkliftv1beta1.ConditionSucceeded, forkliftv1beta1.ConditionFailed, forkliftv1beta1.ConditionCanceled, "Archived"}

// planProblems are the Plan's blocking findings: conditions True of
// category Critical or Error (Forklift's blocking categories) other than
// the lifecycle ones; the toolkit makes one per failed preflight check,
// typed with the check's ID.
func planProblems(conditions []forkliftv1beta1.Condition) []planProblem {
	var problems []planProblem
	for _, c := range conditions {
		if slices.Contains(lifecycleConditions, c.Type) {
			continue
		}
		if c.Status != forkliftv1beta1.ConditionTrue || c.Category != forkliftv1beta1.CategoryCritical && c.Category != forkliftv1beta1.CategoryError {
			continue
		}
		problems = append(problems, planProblem{Type: c.Type, Category: c.Category, Reason: c.Reason, Message: oneLine(c.Message)})
	}
	return problems
}

// planState says whether a Plan is Ready, blocked (the toolkit looked at
// its current generation and found problems), or still being looked at.
func planState(plan *forkliftv1beta1.Plan) (ready bool, problems []planProblem, waiting string) {
	if c := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
		return true, nil, ""
	}
	if plan.Status.ObservedGeneration < plan.Generation || len(plan.Status.Conditions) == 0 {
		return false, nil, "the toolkit has not validated the Plan yet (no status for its generation: is `cclm toolkit` running on the target?)"
	}
	problems = planProblems(plan.Status.Conditions)
	if len(problems) > 0 {
		return false, problems, ""
	}
	var states []string
	for _, c := range plan.Status.Conditions {
		states = append(states, fmt.Sprintf("%s=%s %s", c.Type, c.Status, oneLine(c.Message)))
	}
	return false, nil, "conditions: " + strings.Join(states, "; ")
}

// waitPlanReady waits for the Plan to be Ready; it returns the problems
// when the toolkit found some, and an error when the wait ends without an
// answer.
func waitPlanReady(ctx context.Context, c client.Client, plan *forkliftv1beta1.Plan, timeout, poll time.Duration) ([]planProblem, error) {
	var problems []planProblem
	what := fmt.Sprintf("Plan %s/%s to be Ready", plan.Namespace, plan.Name)
	err := kube.Poll(ctx, poll, timeout, what, func(context.Context) (bool, string, error) {
		// Each read has its own deadline, not what is left of the wait's:
		// the last read must not fail for lack of time and hide the state.
		readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Get(readCtx, client.ObjectKeyFromObject(plan), plan); err != nil {
			return false, "read the Plan: " + err.Error(), nil
		}
		ready, found, waiting := planState(plan)
		problems = found
		return ready || len(found) > 0, waiting, nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted while waiting for Plan %s/%s to be Ready", plan.Namespace, plan.Name)
	}
	return problems, err
}

// deletePlan deletes a Plan that never ran and says so.
func deletePlan(ctx context.Context, c client.Client, plan *forkliftv1beta1.Plan) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.Delete(ctx, plan); client.IgnoreNotFound(err) != nil {
		return fmt.Sprintf("Plan %s/%s is left in place (deleting it failed: %v)", plan.Namespace, plan.Name, err)
	}
	return fmt.Sprintf("Plan %s/%s deleted", plan.Namespace, plan.Name)
}

func printProblems(out io.Writer, problems []planProblem) {
	fmt.Fprintln(out, "the Plan is not Ready:")
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CONDITION\tCATEGORY\tMESSAGE")
	for _, p := range problems {
		fmt.Fprintf(table, "%s\t%s\t%s\n", p.Type, p.Category, p.Message)
	}
	table.Flush()
}

// --- following a Migration -------------------------------------------------

// follower reads the Migration until every VM ended, renders each VM's
// progress, and handles Ctrl-C.
type follower struct {
	c           client.Client
	key         client.ObjectKey
	vms         []forkliftv1beta1.PlanVM
	render      *renderer
	interactive bool
	stdin       io.Reader
	poll        time.Duration
	timeout     time.Duration

	// interrupts are Ctrl-C, SIGTERM and SIGHUP; nil: the process's.
	interrupts <-chan os.Signal
	// reattach is the command that follows the Migration again, said
	// when the follower detaches.
	reattach string

	meters map[string]*rateMeter
}

// interruptState is where the follower is with respect to Ctrl-C.
type interruptState int

const (
	following interruptState = iota
	prompting                // asked "cancel the migration?"
	canceling                // spec.cancel set, following to the end
)

// interruptAction is what a Ctrl-C, SIGTERM or SIGHUP leads to.
type interruptAction int

const (
	askToCancel interruptAction = iota
	cancelNow
	stopWatching
)

// onInterrupt decides what a signal does. SIGTERM and SIGHUP (a CI job's
// timeout, a closed session) detach: the migration goes on, and is never
// canceled for them. A Ctrl-C (SIGINT) on a terminal asks first,
// elsewhere it cancels; one during the question or after the cancel stops
// watching (the cluster carries on).
func onInterrupt(state interruptState, interactive bool, sig os.Signal) (interruptState, interruptAction) {
	if sig != os.Interrupt {
		return state, stopWatching
	}
	switch state {
	case following:
		if interactive {
			return prompting, askToCancel
		}
		return canceling, cancelNow
	default:
		return state, stopWatching
	}
}

// isYes reads a y/N answer; anything but yes is no.
func isYes(answer string) bool {
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}

// follow returns the last VM statuses read.
func (f *follower) follow(ctx context.Context) ([]forkliftv1beta1.VMStatus, error) {
	f.meters = map[string]*rateMeter{}
	signals := f.interrupts
	if signals == nil {
		process := make(chan os.Signal, 2)
		signal.Notify(process, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(process)
		signals = process
	}
	ticker := time.NewTicker(f.poll)
	defer ticker.Stop()
	deadline := time.NewTimer(f.timeout)
	defer deadline.Stop()
	var answers chan string
	state := following
	var last []forkliftv1beta1.VMStatus
	readErr := "" // the last read error shown, shown once
	stopMessage := fmt.Sprintf("stopped watching; the migration goes on in the cluster: kubectl get migration %s -n %s", f.key.Name, f.key.Namespace)
	if f.reattach != "" {
		stopMessage += "; follow it again (and, on a terminal, cancel it with Ctrl-C) with " + f.reattach
	}

	for {
		select {
		case <-ticker.C:
			migration, err := f.read(ctx)
			if apierrors.IsNotFound(err) {
				f.render.done()
				return last, fmt.Errorf("the Migration %s was deleted while it ran: its VMs' state is unknown; check them on both clusters", f.key)
			}
			if err != nil {
				if err.Error() != readErr {
					f.render.message("reading the Migration: %v (retrying)", err)
					readErr = err.Error()
				}
				continue
			}
			readErr = ""
			last = migrationVMs(migration)
			views := f.views(last, time.Now())
			if state != prompting {
				f.render.update(views, time.Now())
			}
			if ended, _ := migrationEnded(migration, f.vms); ended {
				f.render.update(views, time.Now().Add(time.Hour)) // the final state, unthrottled
				f.render.done()
				return last, nil
			}
		case sig := <-signals:
			var action interruptAction
			state, action = onInterrupt(state, f.interactive, sig)
			switch action {
			case askToCancel:
				f.render.message("cancel the migration? [y/N] ")
				answers = make(chan string, 1)
				go func() {
					line, _ := bufio.NewReader(f.stdin).ReadString('\n')
					answers <- line
				}()
			case cancelNow:
				if err := f.cancel(ctx, last); err != nil {
					return last, err
				}
			case stopWatching:
				f.render.done()
				return last, errors.New(stopMessage)
			}
		case answer := <-answers:
			answers = nil
			if isYes(answer) {
				state = canceling
				if err := f.cancel(ctx, last); err != nil {
					return last, err
				}
			} else {
				state = following
				f.render.message("going on with the migration")
			}
		case <-deadline.C:
			f.render.done()
			return last, fmt.Errorf("gave up following the migration after %s (--timeout); %s", f.timeout, strings.TrimPrefix(stopMessage, "stopped watching; "))
		}
	}
}

func (f *follower) read(ctx context.Context) (*forkliftv1beta1.Migration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var migration forkliftv1beta1.Migration
	if err := f.c.Get(ctx, f.key, &migration); err != nil {
		return nil, err
	}
	return &migration, nil
}

// cancel adds every VM still migrating to the Migration's spec.cancel.
func (f *follower) cancel(ctx context.Context, statuses []forkliftv1beta1.VMStatus) error {
	var refs []forkliftv1beta1.Ref
	for _, vm := range f.vms {
		if status := findVMStatus(statuses, vm.Ref); status != nil && vmEnded(status) {
			continue
		}
		refs = append(refs, vm.Ref)
	}
	if len(refs) == 0 {
		f.render.message("every VM has ended already: nothing to cancel")
		return nil
	}
	if err := requestCancel(ctx, f.c, f.key, refs); err != nil {
		return err
	}
	f.render.message("canceling the migration of %s; waiting for the toolkit to wind it down (Ctrl-C again stops watching)", refNames(refs))
	return nil
}

// views are the VMs' display states, in the plan's order.
func (f *follower) views(statuses []forkliftv1beta1.VMStatus, now time.Time) []vmView {
	views := make([]vmView, len(f.vms))
	for i, vm := range f.vms {
		key := vm.Namespace + "/" + vm.Name
		meter := f.meters[key]
		if meter == nil {
			meter = &rateMeter{}
			f.meters[key] = meter
		}
		views[i] = viewOf(key, findVMStatus(statuses, vm.Ref))
		if views[i].Step == migrateStep && !views[i].Ended {
			views[i].Rate = meter.update(now, views[i].Transferred)
		}
	}
	return views
}

// migrationVMs are the per-VM statuses of a Migration.
func migrationVMs(m *forkliftv1beta1.Migration) []forkliftv1beta1.VMStatus {
	return m.Status.VMs
}

// findVMStatus finds a VM's status by ID, else by namespace and name.
func findVMStatus(statuses []forkliftv1beta1.VMStatus, ref forkliftv1beta1.Ref) *forkliftv1beta1.VMStatus {
	for i := range statuses {
		s := &statuses[i]
		if (ref.ID != "" && s.ID == ref.ID) || (s.Name == ref.Name && s.Namespace == ref.Namespace) {
			return s
		}
	}
	return nil
}

// vmEnded: the VM's migration is over, as its outcome condition says
// (Forklift's: phase Completed and Succeeded, Failed or Canceled).
func vmEnded(status *forkliftv1beta1.VMStatus) bool {
	return toolkit.VMOutcome(*status) != ""
}

// migrationEnded reports whether the Migration is over: a Succeeded,
// Failed or Canceled condition, or every VM of the plan ended.
func migrationEnded(m *forkliftv1beta1.Migration, vms []forkliftv1beta1.PlanVM) (bool, string) {
	if outcome := migrationOutcome(m); outcome != "" {
		return true, outcome
	}
	for _, vm := range vms {
		s := findVMStatus(m.Status.VMs, vm.Ref)
		if s == nil || !vmEnded(s) {
			return false, ""
		}
	}
	return len(vms) > 0, ""
}

// --- per-VM views: pure ----------------------------------------------------

// vmView is what the progress display shows of a VM.
type vmView struct {
	Name      string // namespace/name
	Step      string // current step (or the end phase)
	StepIndex int    // 1-based position of Step in the pipeline; 0 if unknown
	StepCount int
	Ended     bool
	Result    string // at the end: Succeeded, Failed, Canceled
	Error     string
	// Transfer, during and after Migrate; Remaining is -1 when unknown.
	Transferred, Total, Remaining int64
	DirtyRate                     int64
	Iteration                     string
	DowntimeMs                    int64 // -1 when unknown
	Rate                          float64
	Elapsed                       time.Duration
	// Waiting says why the current step has not started (the toolkit's
	// in-flight limit), or why its migrations wait (a cluster's or node's
	// parallel limit).
	Waiting string
}

// viewOf reads a VM's status; nil means the toolkit has not started it.
func viewOf(name string, status *forkliftv1beta1.VMStatus) vmView {
	v := vmView{Name: name, Remaining: -1, DowntimeMs: -1, StepCount: len(pipelineSteps)}
	if status == nil {
		v.Step = "Pending"
		return v
	}
	tasks := toolkit.VMTasks(*status)
	if len(tasks) > 0 {
		v.StepCount = len(tasks)
	}
	v.Step = "Pending"
	if current := toolkit.CurrentVMTask(*status); current >= 0 {
		task := tasks[current]
		v.StepIndex = current + 1
		if status.Started != nil {
			v.Step = task.Name
		}
		_, queued := task.Annotations[toolkit.AnnotationSlotWaitSince]
		if task.Phase == toolkit.PhasePending || queued {
			v.Waiting = task.Reason // the toolkit's in-flight limit, or a cluster's or node's
		}
	}
	if migrate := toolkit.FindVMTask(*status, migrateStep); migrate != nil {
		v.Transferred, v.Total = migrate.Progress.Completed, migrate.Progress.Total
		v.Remaining = annotationInt(migrate.Annotations, annotationRemaining, -1)
		v.DirtyRate = annotationInt(migrate.Annotations, annotationDirtyRate, 0)
		v.DowntimeMs = annotationInt(migrate.Annotations, annotationDowntime, -1)
		v.Iteration = migrate.Annotations[annotationIteration]
	}
	if status.Started != nil {
		end := time.Now()
		if status.Completed != nil {
			end = status.Completed.Time
		}
		v.Elapsed = end.Sub(status.Started.Time)
	}
	if vmEnded(status) {
		v.Ended = true
		v.Result = vmResultOf(status)
		v.Error = errorText(status.Error)
	}
	return v
}

func annotationInt(annotations map[string]string, key string, fallback int64) int64 {
	value, ok := annotations[key]
	if !ok {
		return fallback
	}
	n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		return fallback
	}
	return n
}

func errorText(e *forkliftv1beta1.Error) string {
	if e == nil {
		return ""
	}
	reasons := strings.Join(e.Reasons, "; ")
	if e.Phase != "" {
		return e.Phase + ": " + reasons
	}
	return reasons
}

// vmResultOf maps a VM's outcome condition to its result: never a
// success unless the VM says Succeeded (a canceled VM is not migrated).
func vmResultOf(status *forkliftv1beta1.VMStatus) string {
	switch toolkit.VMOutcome(*status) {
	case toolkit.VMSucceeded:
		if status.Error != nil {
			return resultFailed
		}
		return resultSucceeded
	case toolkit.VMFailed:
		return resultFailed
	case toolkit.VMCanceled:
		return resultCanceled
	}
	return resultIncomplete
}

// vmResults are the VMs' outcomes for -o json and the summary.
func vmResults(vms []forkliftv1beta1.PlanVM, statuses []forkliftv1beta1.VMStatus) []vmResult {
	results := make([]vmResult, len(vms))
	for i, vm := range vms {
		r := vmResult{Name: vm.Name, Namespace: vm.Namespace, Result: resultNotStarted}
		status := findVMStatus(statuses, vm.Ref)
		if status != nil {
			view := viewOf(vm.Namespace+"/"+vm.Name, status)
			r.Result = resultIncomplete
			if view.Ended {
				r.Result = view.Result
			}
			r.Error = errorText(status.Error)
			r.Bytes = view.Transferred
			if view.DowntimeMs >= 0 && r.Result == resultSucceeded {
				downtime := view.DowntimeMs
				r.DowntimeMs = &downtime
			}
			if status.Started != nil {
				started := status.Started.Time
				r.Started = &started
			}
			if status.Completed != nil {
				completed := status.Completed.Time
				r.Completed = &completed
				if r.Started != nil {
					r.DurationSeconds = completed.Sub(*r.Started).Seconds()
				}
			}
		}
		results[i] = r
	}
	return results
}

// overallResult is Succeeded when every VM succeeded, else the first
// other result among Failed, Canceled, Incomplete, NotStarted.
func overallResult(results []vmResult) string {
	for _, want := range []string{resultFailed, resultCanceled, resultIncomplete, resultNotStarted} {
		for _, r := range results {
			if r.Result == want {
				return want
			}
		}
	}
	if len(results) == 0 {
		return resultNotStarted
	}
	return resultSucceeded
}

func printResults(out io.Writer, results []vmResult) {
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "VM\tRESULT\tDURATION\tDOWNTIME\tTRANSFERRED\tERROR")
	for _, r := range results {
		duration, downtime := "-", "-"
		if r.DurationSeconds > 0 {
			duration = formatDuration(time.Duration(r.DurationSeconds * float64(time.Second)))
		}
		if r.DowntimeMs != nil {
			downtime = fmt.Sprintf("%d ms", *r.DowntimeMs)
		}
		fmt.Fprintf(table, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Result, duration, downtime, formatBytes(r.Bytes), dashIfEmpty(oneLine(r.Error)))
	}
	table.Flush()
}

// rateMeter estimates a transfer rate from successive byte counts: an
// exponentially weighted average of the rates between readings.
type rateMeter struct {
	at    time.Time
	bytes int64
	rate  float64
}

// update takes a reading and returns the current estimate (bytes/s).
func (m *rateMeter) update(now time.Time, bytes int64) float64 {
	if m.at.IsZero() || bytes < m.bytes {
		m.at, m.bytes, m.rate = now, bytes, 0
		return 0
	}
	elapsed := now.Sub(m.at).Seconds()
	if elapsed < 0.2 || bytes == m.bytes && elapsed < 2 {
		// Too soon to tell, or no new reading yet (the status is written
		// every second or so): keep the estimate.
		return m.rate
	}
	current := float64(bytes-m.bytes) / elapsed
	if m.rate == 0 {
		m.rate = current
	} else {
		m.rate = 0.5*m.rate + 0.5*current
	}
	m.at, m.bytes = now, bytes
	return m.rate
}

// eta is how long the remaining bytes take at rate; false when unknown or
// when nothing remains (the switchover is next).
func eta(remaining int64, rate float64) (time.Duration, bool) {
	if remaining <= 0 || rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(remaining) / rate * float64(time.Second)), true
}

// remaining is the bytes left: the toolkit's figure, else total minus
// transferred; -1 when unknown.
func (v vmView) remaining() int64 {
	switch {
	case v.Remaining >= 0:
		return v.Remaining
	case v.Total > 0 && v.Transferred <= v.Total:
		return v.Total - v.Transferred
	}
	return -1
}

// fraction is how far the transfer is, 0 to 1; QEMU's transferred bytes
// can exceed the total (dirty pages sent again), so the remaining bytes
// decide when known.
func (v vmView) fraction() float64 {
	if v.Total <= 0 {
		return 0
	}
	f := float64(v.Transferred) / float64(v.Total)
	if r := v.remaining(); r >= 0 {
		f = 1 - float64(r)/float64(v.Total)
	}
	return min(max(f, 0), 1)
}

// formatBytes is a byte count in IEC units, e.g. "64.0 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	value, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		value /= unit
		suffix = s
		if value < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f %s", value, suffix)
}

// formatRate is a rate in bytes/s, e.g. "35.2 MiB/s".
func formatRate(bytesPerSecond float64) string {
	return formatBytes(int64(bytesPerSecond)) + "/s"
}

// formatDuration is short: "850ms", "12s", "1m05s", "1h02m".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// formatETA is an ETA in whole seconds, "<1s" below one.
func formatETA(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return formatDuration(d)
}

// bar is a progress bar of width cells, e.g. "[#####.....]".
func bar(fraction float64, width int) string {
	if width < 3 {
		return ""
	}
	inner := width - 2
	filled := int(fraction*float64(inner) + 0.5)
	filled = min(max(filled, 0), inner)
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", inner-filled) + "]"
}

// stepLabel is "Migrate (12/13)", or the phase alone when its place is
// unknown.
func (v vmView) stepLabel() string {
	if v.StepIndex > 0 && !v.Ended {
		return fmt.Sprintf("%s (%d/%d)", v.Step, v.StepIndex, v.StepCount)
	}
	return v.Step
}

// transferText is "64.0 MiB of 142.0 MiB, 35.2 MiB/s, ETA 2s", or "" before
// the transfer.
func (v vmView) transferText() string {
	if v.Total <= 0 && v.Transferred <= 0 {
		return ""
	}
	parts := []string{fmt.Sprintf("%s of %s", formatBytes(v.Transferred), formatBytes(v.Total))}
	if v.Rate > 0 {
		parts = append(parts, formatRate(v.Rate))
	}
	if d, ok := eta(v.remaining(), v.Rate); ok {
		parts = append(parts, "ETA "+formatETA(d))
	}
	if v.Iteration != "" && v.Iteration != "0" && v.Iteration != "1" {
		parts = append(parts, "pass "+v.Iteration)
	}
	return strings.Join(parts, ", ")
}

// endText is the end of a VM: "Succeeded in 12s, 142.0 MiB sent, downtime
// 25 ms" (a downtime only after a switchover, i.e. on success).
func (v vmView) endText() string {
	text := v.Result
	if v.Elapsed > 0 {
		text += " in " + formatDuration(v.Elapsed)
	}
	if v.Transferred > 0 {
		text += ", " + formatBytes(v.Transferred) + " sent"
	}
	if v.DowntimeMs >= 0 && v.Result == resultSucceeded {
		text += fmt.Sprintf(", downtime %d ms", v.DowntimeMs)
	}
	if v.Error != "" {
		text += ": " + oneLine(v.Error)
	}
	return text
}

// plainLine is a VM's state as one line of a log.
func plainLine(v vmView) string {
	if v.Ended {
		return v.Name + ": " + v.endText()
	}
	line := v.Name + ": " + v.stepLabel()
	if t := v.transferText(); t != "" && v.Step == migrateStep {
		line += fmt.Sprintf(": %s (%d%%)", t, int(v.fraction()*100))
	}
	if v.Waiting != "" {
		line += ": " + v.Waiting
	}
	return line
}

// barLine is a VM's state as a terminal line of at most width columns:
// name, step, and during the transfer a bar as wide as the room left
// (none on a narrow terminal), the percentage, bytes, rate and ETA.
func barLine(v vmView, width, nameWidth int) string {
	name := fmt.Sprintf("%-*s", nameWidth, v.Name)
	if v.Ended {
		return truncate(name+" "+v.endText(), width)
	}
	head := name + " " + fmt.Sprintf("%-14s", v.stepLabel())
	if v.Step == migrateStep && v.Total > 0 {
		tail := fmt.Sprintf("%3d%% %s", int(v.fraction()*100), v.compactTransferText())
		if barWidth := min(width-len(head)-len(tail)-2, 32); barWidth >= 8 {
			return truncate(head+" "+bar(v.fraction(), barWidth)+" "+tail, width)
		}
		return truncate(head+" "+tail, width)
	}
	if v.Waiting != "" {
		return truncate(head+" "+v.Waiting, width)
	}
	if v.Elapsed > 0 {
		head += " " + formatDuration(v.Elapsed)
	}
	return truncate(head, width)
}

// compactTransferText is transferText for a bar line: "32.0/128.0 MiB
// 16.0 MiB/s ETA 5s".
func (v vmView) compactTransferText() string {
	parts := []string{formatBytesOf(v.Transferred, v.Total)}
	if v.Rate > 0 {
		parts = append(parts, formatRate(v.Rate))
	}
	if d, ok := eta(v.remaining(), v.Rate); ok {
		parts = append(parts, "ETA "+formatETA(d))
	}
	return strings.Join(parts, " ")
}

// formatBytesOf is "32.0/128.0 MiB", or "512 B/1.0 KiB" across units.
func formatBytesOf(done, total int64) string {
	a, b := formatBytes(done), formatBytes(total)
	if ia, ib := strings.LastIndexByte(a, ' '), strings.LastIndexByte(b, ' '); a[ia:] == b[ib:] {
		return a[:ia] + "/" + b
	}
	return a + "/" + b
}

func truncate(s string, width int) string {
	if width > 0 && len(s) > width {
		return s[:width]
	}
	return s
}

// plainThrottle is the least time between two progress lines of a VM in
// the same step.
const plainThrottle = 2 * time.Second

// printed is what a VM's last plain line showed.
type printed struct {
	at    time.Time
	key   string // step and end
	bytes int64
}

// plainDue decides whether a VM's state is worth a new plain line: a
// new step or end at once, new bytes at most every plainThrottle.
func plainDue(last printed, v vmView, now time.Time) bool {
	key := v.Step + "/" + v.Result
	switch {
	case last.at.IsZero() || key != last.key:
		return true
	case v.Transferred != last.bytes:
		return now.Sub(last.at) >= plainThrottle
	}
	return false
}

// --- rendering -------------------------------------------------------------

// renderer shows the VMs' progress: on a terminal one line per VM, redrawn
// in place; elsewhere a line per change, throttled.
type renderer struct {
	out      io.Writer
	terminal bool
	width    func() int
	drawn    int    // lines of the block last drawn (terminal)
	frame    string // the block last drawn
	last     map[string]printed
}

func newRenderer(out io.Writer) *renderer {
	r := &renderer{out: out, terminal: isTerminal(out), last: map[string]printed{}, width: func() int { return 100 }}
	if file, ok := out.(*os.File); ok && r.terminal {
		r.width = func() int {
			if ws, err := unix.IoctlGetWinsize(int(file.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
				return int(ws.Col)
			}
			return 80
		}
	}
	return r
}

func (r *renderer) update(views []vmView, now time.Time) {
	if r.terminal {
		width := r.width() - 1 // never wrap: the cursor must go back up exactly
		nameWidth := 0
		for _, v := range views {
			nameWidth = max(nameWidth, len(v.Name))
		}
		var frame strings.Builder
		for _, v := range views {
			frame.WriteString("\r\x1b[2K" + barLine(v, width, nameWidth) + "\n")
		}
		if r.drawn > 0 && frame.String() == r.frame {
			return
		}
		if r.drawn > 0 {
			fmt.Fprintf(r.out, "\x1b[%dA", r.drawn)
		}
		io.WriteString(r.out, frame.String())
		r.frame, r.drawn = frame.String(), len(views)
		return
	}
	for _, v := range views {
		if plainDue(r.last[v.Name], v, now) {
			fmt.Fprintln(r.out, plainLine(v))
			r.last[v.Name] = printed{at: now, key: v.Step + "/" + v.Result, bytes: v.Transferred}
		}
	}
}

// message prints a line above the progress block (which is drawn again
// below it on the next update).
func (r *renderer) message(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if r.terminal && r.drawn > 0 {
		fmt.Fprintf(r.out, "\x1b[%dA\x1b[J", r.drawn)
		r.drawn = 0
	}
	if strings.HasSuffix(text, " ") { // a prompt: the answer goes on its line
		io.WriteString(r.out, text)
		return
	}
	fmt.Fprintln(r.out, text)
}

// done leaves the last drawn block in place.
func (r *renderer) done() { r.drawn = 0 }

// isTerminal reports whether f is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}
