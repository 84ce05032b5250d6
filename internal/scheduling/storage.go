package scheduling

import (
	"slices"
	"strings"

	storagev1 "k8s.io/api/storage/v1"
)

// Storage names the scheduler and the preflight checks read.
const (
	// DefaultStorageClassAnnotation marks the default StorageClass.
	DefaultStorageClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	// betaDefaultStorageClassAnnotation is the older spelling, still
	// honoured by Kubernetes.
	betaDefaultStorageClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
	// LocalProvisioner provisions cclm's node-local volumes (StorageClass
	// cclm-local), which live on one node at a time.
	LocalProvisioner = "cclm.io/local"
)

// DefaultStorageClass is the class a PVC without one gets: the newest of
// those marked default, as Kubernetes picks it; "" if none is.
func DefaultStorageClass(classes []storagev1.StorageClass) string {
	var defaults []storagev1.StorageClass
	for _, class := range classes {
		if class.Annotations[DefaultStorageClassAnnotation] == "true" || class.Annotations[betaDefaultStorageClassAnnotation] == "true" {
			defaults = append(defaults, class)
		}
	}
	if len(defaults) == 0 {
		return ""
	}
	newest := slices.MaxFunc(defaults, func(a, b storagev1.StorageClass) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name) // same age: the first by name
	})
	return newest.Name
}
