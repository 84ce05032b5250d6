package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// componentStart is what a long-running component command (sync,
// toolkit) starts from: its ServiceAccount's kubeconfig, and a logger on
// stderr that names the cluster, as slog for the command and as logr for
// the controllers.
func componentStart(kubeconfig, clusterName string) (*rest.Config, *slog.Logger, logr.Logger, error) {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, logr.Logger{}, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if clusterName != "" {
		logger = logger.With("cluster", clusterName)
	}
	return restConfig, logger, logr.FromSlogHandler(logger.Handler()), nil
}
