// Package dashboard serves `cclm dashboard`: one live page of the source
// and target clusters side by side, their nodes and VMs, the toolkit's
// Plans, and each migration's transfer as a chart. It reads through the
// user's own kubeconfig with watches (informers), and pushes a snapshot to
// the page (Server-Sent Events) within a fraction of a second of a change.
// Every asset is embedded: the page needs no network but the dashboard.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

//go:embed static
var static embed.FS

// Cluster is one cluster the page shows.
type Cluster struct {
	Name   string
	Role   string // source or target
	Config *rest.Config
}

// Options configure the dashboard.
type Options struct {
	Clusters []Cluster
	// Coalesce is how long a change waits for others before a snapshot
	// goes out; default 150 ms.
	Coalesce time.Duration
	Logger   *slog.Logger
}

// syncTimeout bounds the first read of a kind; a kind the kubeconfig
// cannot list is then left out, and the page says so.
const syncTimeout = 20 * time.Second

// Server watches the clusters and serves the page.
type Server struct {
	opts     Options
	clusters []*watchedCluster
	history  *history

	changed chan struct{}

	mu          sync.Mutex
	latest      []byte
	subscribers map[chan []byte]struct{}
}

// watchedCluster is a cluster's informer cache and what it could not read.
type watchedCluster struct {
	Cluster
	cache    cache.Cache
	mu       sync.Mutex
	problems []string
	watched  map[string]bool // kinds being watched
}

// New makes the server; Run starts it.
func New(opts Options) *Server {
	if opts.Coalesce <= 0 {
		opts.Coalesce = 150 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, history: newHistory(), changed: make(chan struct{}, 1), subscribers: map[chan []byte]struct{}{}}
}

// watchedKinds are what the page shows of each cluster.
var watchedKinds = map[string]client.Object{
	"nodes":                   &corev1.Node{},
	"virtualmachines":         &kubevirtv1.VirtualMachine{},
	"virtualmachineinstances": &kubevirtv1.VirtualMachineInstance{},
	"plans":                   &forkliftv1beta1.Plan{},
}

// Run watches every cluster and serves on listener until ctx ends.
func (s *Server) Run(ctx context.Context, listener net.Listener) error {
	for _, c := range s.opts.Clusters {
		watched, err := s.watch(ctx, c)
		if err != nil {
			return err
		}
		s.clusters = append(s.clusters, watched)
	}
	go s.publish(ctx)
	s.signal()
	server := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// watch starts the cluster's informers; each kind syncs on its own, so
// that one the user may not list delays nothing else.
func (s *Server) watch(ctx context.Context, c Cluster) (*watchedCluster, error) {
	informers, err := cache.New(c.Config, cache.Options{Scheme: scheme.Scheme, ReaderFailOnMissingInformer: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	w := &watchedCluster{Cluster: c, cache: informers, watched: map[string]bool{}}
	go func() { _ = informers.Start(ctx) }()
	for kind, obj := range watchedKinds {
		go s.watchKind(ctx, w, kind, obj)
	}
	return w, nil
}

func (s *Server) watchKind(ctx context.Context, w *watchedCluster, kind string, obj client.Object) {
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	informer, err := w.cache.GetInformer(syncCtx, obj)
	if err == nil {
		_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.signal() },
			UpdateFunc: func(any, any) { s.signal() },
			DeleteFunc: func(any) { s.signal() },
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			_ = w.cache.RemoveInformer(context.WithoutCancel(ctx), obj)
			w.problems = append(w.problems, fmt.Sprintf("cannot watch %s with this kubeconfig (%v)", kind, err))
			s.opts.Logger.Warn("not shown", "cluster", w.Name, "kind", kind, "error", err.Error())
		}
	} else {
		w.watched[kind] = true
	}
	s.signal()
}

// signal notes a change; publish coalesces them.
func (s *Server) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// publish sends a snapshot to every page after each burst of changes.
func (s *Server) publish(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.Coalesce):
		}
		snapshot, err := json.Marshal(s.snapshot(ctx))
		if err != nil {
			s.opts.Logger.Error("snapshot", "error", err.Error())
			continue
		}
		s.broadcast(snapshot)
	}
}

// snapshot reads every cluster's cache.
func (s *Server) snapshot(ctx context.Context) Snapshot {
	snapshot := Snapshot{At: time.Now(), Clusters: []ClusterView{}, Plans: []PlanView{}}
	for _, w := range s.clusters {
		objects := w.read(ctx)
		if objects.VMIsRead {
			s.history.observe(w.Name, objects.VMIs, snapshot.At)
		}
		snapshot.Clusters = append(snapshot.Clusters, clusterView(objects))
		snapshot.Plans = append(snapshot.Plans, planViews(w.Name, objects.Plans)...)
	}
	snapshot.Migrations = s.history.views()
	return snapshot
}

// read lists what the cluster's cache holds.
func (w *watchedCluster) read(ctx context.Context) ClusterObjects {
	w.mu.Lock()
	objects := ClusterObjects{Name: w.Name, Role: w.Role, Problems: append([]string(nil), w.problems...)}
	watched := maps.Clone(w.watched)
	w.mu.Unlock()
	lists := map[string]client.ObjectList{}
	var nodes corev1.NodeList
	var vms kubevirtv1.VirtualMachineList
	var vmis kubevirtv1.VirtualMachineInstanceList
	var plans forkliftv1beta1.PlanList
	lists["nodes"], lists["virtualmachines"], lists["virtualmachineinstances"], lists["plans"] = &nodes, &vms, &vmis, &plans
	for kind, list := range lists {
		if !watched[kind] {
			continue
		}
		if err := w.cache.List(ctx, list); err != nil {
			objects.Problems = append(objects.Problems, fmt.Sprintf("list %s: %v", kind, err))
		}
	}
	objects.Nodes, objects.VMs, objects.VMIs, objects.Plans = nodes.Items, vms.Items, vmis.Items, plans.Items
	objects.VMIsRead = watched["virtualmachineinstances"]
	return objects
}

func (s *Server) broadcast(snapshot []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest = snapshot
	for subscriber := range s.subscribers {
		select {
		case subscriber <- snapshot:
		default: // a slow page skips a snapshot; the next one is whole
		}
	}
}

func (s *Server) subscribe() (chan []byte, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan []byte, 1)
	s.subscribers[ch] = struct{}{}
	return ch, s.latest
}

func (s *Server) unsubscribe(ch chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subscribers, ch)
}

func (s *Server) handler() http.Handler {
	assets, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(assets))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /snapshot", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		latest := s.latest
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(latest)
	})
	return mux
}

// events streams snapshots as Server-Sent Events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	updates, latest := s.subscribe()
	defer s.unsubscribe(updates)
	send := func(snapshot []byte) bool {
		if snapshot == nil {
			return true
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", snapshot); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if !send(latest) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case snapshot := <-updates:
			if !send(snapshot) {
				return
			}
		}
	}
}
