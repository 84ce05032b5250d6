package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cclm-io/cclm/config"
	"github.com/cclm-io/cclm/internal/qemu"
)

// versionInfo is what `cclm version` reports.
type versionInfo struct {
	CCLM string `json:"cclm"`
	Go   string `json:"go"`
	// QEMU is the QEMU on this machine's PATH, or why there is none.
	QEMU        string `json:"qemu,omitempty"`
	QEMUPackage string `json:"qemuPackage,omitempty"`
	// QEMUProblem says why that QEMU cannot run cclm's guests.
	QEMUProblem string `json:"qemuProblem,omitempty"`
	// APIs are the group/versions cclm serves, each with its kinds.
	APIs map[string][]string `json:"apis"`
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show cclm's version, its Go, the local QEMU, and the API versions it speaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			info, err := currentVersions(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), info)
			}
			printVersions(cmd.OutOrStdout(), info)
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func currentVersions(ctx context.Context) (versionInfo, error) {
	info := versionInfo{CCLM: buildVersion(), Go: runtime.Version(), APIs: map[string][]string{}}
	v, err := qemu.CheckVersion(ctx, "")
	if v != (qemu.Version{}) {
		info.QEMU, info.QEMUPackage = v.String(), v.Package
	}
	if err != nil {
		info.QEMUProblem = err.Error()
	}
	crds, err := config.CRDs()
	if err != nil {
		return info, err
	}
	for _, crd := range crds {
		for _, version := range crd.Spec.Versions {
			if version.Served {
				gv := crd.Spec.Group + "/" + version.Name
				info.APIs[gv] = append(info.APIs[gv], crd.Spec.Names.Kind)
			}
		}
	}
	for _, kinds := range info.APIs {
		slices.Sort(kinds)
	}
	return info, nil
}

// buildVersion is the module version, else the commit it was built from.
func buildVersion() string {
	build, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := build.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	settings := map[string]string{}
	for _, s := range build.Settings {
		settings[s.Key] = s.Value
	}
	revision := settings["vcs.revision"]
	if revision == "" {
		return "devel"
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if settings["vcs.modified"] == "true" {
		revision += "-dirty"
	}
	return "devel-" + revision
}

func printVersions(out io.Writer, info versionInfo) {
	fmt.Fprintf(out, "cclm: %s\ngo:   %s\nqemu: %s", info.CCLM, info.Go, orNone(info.QEMU))
	if info.QEMUPackage != "" {
		fmt.Fprintf(out, " (%s)", info.QEMUPackage)
	}
	if info.QEMUProblem != "" {
		fmt.Fprintf(out, "\n      %s", info.QEMUProblem)
	}
	fmt.Fprintln(out, "\nAPIs:")
	for _, gv := range slices.Sorted(maps.Keys(info.APIs)) {
		fmt.Fprintf(out, "  %s: %s\n", gv, strings.Join(info.APIs[gv], ", "))
	}
}
