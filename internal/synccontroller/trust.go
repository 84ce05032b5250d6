package synccontroller

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/cclm-io/cclm/internal/trust"
)

// trustSyncTimeout bounds the first read of the trust ConfigMaps.
const trustSyncTimeout = 30 * time.Second

// trustBundle is the set of CAs peers' certificates must chain to: the
// ca-bundle of ConfigMap kubevirt-ca (this cluster's CA) and of ConfigMap
// kubevirt-external-ca (the peers' CAs), kept current by watching both, so
// that an imported CA counts from the next handshake on.
type trustBundle struct {
	namespace string
	logger    logr.Logger
	informers []cache.SharedIndexInformer

	roots atomic.Pointer[x509.CertPool]
	// loaded is closed once roots was first set.
	loaded     chan struct{}
	loadedOnce sync.Once
	// rebuildMu orders rebuilds and guards fingerprint, the bundle last
	// logged.
	rebuildMu   sync.Mutex
	fingerprint string
}

// trustConfigMaps are the ConfigMaps the bundle is made of.
var trustConfigMaps = []string{trust.CABundleConfigMap, trust.ExternalCAConfigMap}

func newTrustBundle(clientset kubernetes.Interface, namespace string, logger logr.Logger) *trustBundle {
	bundle := &trustBundle{namespace: namespace, logger: logger, loaded: make(chan struct{})}
	for _, name := range trustConfigMaps {
		bundle.informers = append(bundle.informers, configMapInformer(clientset, namespace, name))
	}
	return bundle
}

// configMapInformer watches one ConfigMap by name, which is all that RBAC
// with resourceNames lets a list or watch see.
func configMapInformer(clientset kubernetes.Interface, namespace, name string) cache.SharedIndexInformer {
	byName := func(options *metav1.ListOptions) {
		options.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
	listWatch := cache.NewFilteredListWatchFromClient(clientset.CoreV1().RESTClient(), "configmaps", namespace, byName)
	return cache.NewSharedIndexInformer(listWatch, &corev1.ConfigMap{}, 0, cache.Indexers{})
}

// NeedLeaderElection is false: every replica keeps the bundle current, so
// that a new leader can authenticate peers at once.
func (b *trustBundle) NeedLeaderElection() bool { return false }

// Start watches the ConfigMaps until ctx ends.
func (b *trustBundle) Start(ctx context.Context) error {
	rebuild := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { b.rebuild() },
		UpdateFunc: func(any, any) { b.rebuild() },
		DeleteFunc: func(any) { b.rebuild() },
	}
	for _, informer := range b.informers {
		if _, err := informer.AddEventHandler(rebuild); err != nil {
			return err
		}
		go informer.RunWithContext(ctx)
	}
	syncCtx, cancel := context.WithTimeout(ctx, trustSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), b.hasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("sync controller: could not read ConfigMaps %s in %s within %s; check that they are readable by %s",
			strings.Join(trustConfigMaps, " and "), b.namespace, trustSyncTimeout, ServiceAccountName)
	}
	b.rebuild()
	<-ctx.Done()
	return nil
}

func (b *trustBundle) hasSynced() bool {
	for _, informer := range b.informers {
		if !informer.HasSynced() {
			return false
		}
	}
	return true
}

// rootPool is the current trust, or an error before it was first read.
func (b *trustBundle) rootPool() (*x509.CertPool, error) {
	if roots := b.roots.Load(); roots != nil {
		return roots, nil
	}
	return nil, errors.New("the trust bundle (ConfigMaps kubevirt-ca and kubevirt-external-ca) has not been read yet")
}

// rebuild makes the pool anew from the ConfigMaps as the informers hold
// them.
func (b *trustBundle) rebuild() {
	if !b.hasSynced() {
		return
	}
	b.rebuildMu.Lock()
	defer b.rebuildMu.Unlock()
	var cas []*x509.Certificate
	for i, informer := range b.informers {
		found, invalid := parseBundle(b.bundleOf(informer, trustConfigMaps[i]))
		if invalid > 0 {
			b.logger.Info("skipped PEM blocks that are not CA certificates", "configMap", b.namespace+"/"+trustConfigMaps[i], "key", trust.BundleKey, "skipped", invalid)
		}
		cas = append(cas, found...)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	b.roots.Store(roots)
	b.loadedOnce.Do(func() { close(b.loaded) })
	b.logIfChanged(cas)
}

// waitLoaded waits for the first read of the bundle, so that the server
// does not refuse its first callers for want of it.
func (b *trustBundle) waitLoaded(ctx context.Context) error {
	select {
	case <-b.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(trustSyncTimeout):
		return fmt.Errorf("the trust bundle (ConfigMaps %s in %s) was not read within %s", strings.Join(trustConfigMaps, " and "), b.namespace, trustSyncTimeout)
	}
}

func (b *trustBundle) bundleOf(informer cache.SharedIndexInformer, name string) string {
	obj, exists, err := informer.GetStore().GetByKey(b.namespace + "/" + name)
	if err != nil || !exists {
		return ""
	}
	return obj.(*corev1.ConfigMap).Data[trust.BundleKey]
}

func (b *trustBundle) logIfChanged(cas []*x509.Certificate) {
	names := make([]string, 0, len(cas))
	digest := sha256.New()
	for _, ca := range cas {
		names = append(names, ca.Subject.CommonName)
		digest.Write(ca.Raw)
	}
	fingerprint := string(digest.Sum(nil))
	if fingerprint == b.fingerprint {
		return
	}
	b.fingerprint = fingerprint
	b.logger.Info("trusting CAs for synchronization", "count", len(cas), "cas", strings.Join(names, ", "))
}

// parseBundle reads the CA certificates of a PEM bundle; blocks that are
// not CA certificates are counted and skipped, as upstream skips invalid
// CAs when it merges the bundles.
func parseBundle(bundle string) (cas []*x509.Certificate, invalid int) {
	rest := []byte(bundle)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return cas, invalid
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if block.Type != "CERTIFICATE" || err != nil || !cert.IsCA {
			invalid++
			continue
		}
		if !slices.ContainsFunc(cas, cert.Equal) {
			cas = append(cas, cert)
		}
	}
}
