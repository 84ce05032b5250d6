package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// logOptions are the logging flags every component shares: one
// structured logger (slog), text or JSON, and kubectl's -v verbosity.
type logOptions struct {
	format    string
	verbosity int
}

const (
	logText = "text"
	logJSON = "json"
)

func (o *logOptions) add(flags *pflag.FlagSet) {
	flags.StringVar(&o.format, "log-format", logText, "components' log format: text or json")
	flags.IntVarP(&o.verbosity, "v", "v", 0, "components' log verbosity: 0 logs what an operator needs; higher numbers log more")
}

// logger is the components' structured logger on w, with attrs on every
// record. logr's V(n) is slog's level -n, so -v n shows up to V(n).
func (o *logOptions) logger(w io.Writer, attrs ...any) (*slog.Logger, error) {
	handlerOptions := &slog.HandlerOptions{Level: slog.Level(-o.verbosity)}
	var handler slog.Handler
	switch o.format {
	case logText, "":
		handler = slog.NewTextHandler(w, handlerOptions)
	case logJSON:
		handler = slog.NewJSONHandler(w, handlerOptions)
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", o.format)
	}
	if o.verbosity < 0 {
		return nil, fmt.Errorf("-v %d: use 0 or more", o.verbosity)
	}
	return slog.New(handler).With(attrs...), nil
}

// componentStart is what a long-running component command (sync,
// toolkit) starts from: its ServiceAccount's kubeconfig, and a logger on
// stderr that names the cluster, as slog for the command and as logr for
// the controllers.
func (o *logOptions) componentStart(kubeconfig, clusterName string) (*rest.Config, *slog.Logger, logr.Logger, error) {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, logr.Logger{}, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	var attrs []any
	if clusterName != "" {
		attrs = append(attrs, "cluster", clusterName)
	}
	logger, err := o.logger(os.Stderr, attrs...)
	if err != nil {
		return nil, nil, logr.Logger{}, err
	}
	return restConfig, logger, logr.FromSlogHandler(logger.Handler()), nil
}
