package vmiruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// A VMI's secret, configMap and sysprep volumes are read-only disks: an
// ISO 9660 image (Joliet and Rock Ridge names, volume label cfgdata
// unless the volume names another) with one file per key, as
// virt-launcher makes them with genisoimage upstream. Each node makes its
// own from its cluster's object when the VMI starts or arrives; a
// migration does not mirror them (they are read-only), so a migrated VM's
// disk holds the target cluster's copy, which the toolkit made equal.

// isoTool makes the images; `make setup` installs it.
const isoTool = "genisoimage"

// defaultVolumeLabel is upstream's label of these disks.
const defaultVolumeLabel = "cfgdata"

// makeConfigDisks makes the config disks of the VMI's volumes in runDir
// and adds their paths to paths. waiting says which object is missing
// (the VMI waits for it); a Secret the VMI's cloud-init names must exist
// too, though the cclm guest runs no cloud-init.
func (r *Runtime) makeConfigDisks(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, runDir string, paths map[string]string) (string, error) {
	// Each referenced object is read once: a missing one stops the VMI
	// whether a disk or its cloud-init names it.
	read := map[kubevirtv1.ObjectRef]map[string][]byte{}
	for _, ref := range vmi.Spec.ReferencedObjects() {
		files, err := readObjectFiles(ctx, r.reader, vmi.Namespace, ref)
		if err != nil {
			return missingOrError(err)
		}
		read[ref] = files
	}
	for _, volume := range vmi.Spec.Volumes {
		ref, ok := volume.ConfigDiskRef()
		if !ok {
			continue
		}
		if err := os.MkdirAll(runDir, 0o700); err != nil {
			return "", err
		}
		path := filepath.Join(runDir, "config-"+volume.Name+".iso")
		if err := writeISO(ctx, path, volumeLabel(volume), read[ref]); err != nil {
			return "", fmt.Errorf("volume %s: %w", volume.Name, err)
		}
		paths[volume.Name] = path
	}
	return "", nil
}

// errObjectMissing is a referenced Secret or ConfigMap that does not exist.
var errObjectMissing = errors.New("missing")

func missingOrError(err error) (string, error) {
	if errors.Is(err, errObjectMissing) {
		return err.Error(), nil
	}
	return "", err
}

// readObjectFiles reads the Secret's or ConfigMap's keys as files; a
// missing optional one has none.
func readObjectFiles(ctx context.Context, c client.Reader, namespace string, ref kubevirtv1.ObjectRef) (map[string][]byte, error) {
	key := client.ObjectKey{Namespace: namespace, Name: ref.Name}
	files := map[string][]byte{}
	var err error
	switch ref.Kind {
	case "Secret":
		var secret corev1.Secret
		if err = c.Get(ctx, key, &secret); err == nil {
			for k, v := range secret.Data {
				files[k] = v
			}
		}
	case "ConfigMap":
		var configMap corev1.ConfigMap
		if err = c.Get(ctx, key, &configMap); err == nil {
			for k, v := range configMap.Data {
				files[k] = []byte(v)
			}
			for k, v := range configMap.BinaryData {
				files[k] = v
			}
		}
	}
	switch {
	case apierrors.IsNotFound(err) && ref.Optional:
		return files, nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: %s %s/%s does not exist: create it, or mark the volume optional", errObjectMissing, ref.Kind, namespace, ref.Name)
	case err != nil:
		return nil, fmt.Errorf("read %s %s/%s: %w", ref.Kind, namespace, ref.Name, err)
	}
	return files, nil
}

func volumeLabel(v kubevirtv1.Volume) string {
	switch {
	case v.Secret != nil && v.Secret.VolumeLabel != "":
		return v.Secret.VolumeLabel
	case v.ConfigMap != nil && v.ConfigMap.VolumeLabel != "":
		return v.ConfigMap.VolumeLabel
	}
	return defaultVolumeLabel
}

// writeISO makes the image at path from the files (name -> content),
// through a directory next to it that is removed again.
func writeISO(ctx context.Context, path, label string, files map[string][]byte) error {
	staging := path + ".d"
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.ContainsRune(name, '/') {
			return fmt.Errorf("key %q is not a file name", name)
		}
		if err := os.WriteFile(filepath.Join(staging, name), files[name], 0o600); err != nil {
			return err
		}
	}
	out, err := exec.CommandContext(ctx, isoTool, "-output", path+".tmp", "-volid", label, "-joliet", "-rock", "-quiet", staging).CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s is not installed on this node: run make setup (apt-get install genisoimage)", isoTool)
		}
		return fmt.Errorf("%s: %v: %s", isoTool, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(path+".tmp", path)
}
