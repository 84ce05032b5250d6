package install

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// The local storage the node agents provision: a class that binds a claim
// only once its VMI is scheduled (the virt controller then writes
// volume.kubernetes.io/selected-node on the claim) and deletes the volume
// with the claim.
const (
	LocalStorageClassName = "cclm-local"
	LocalProvisioner      = scheduling.LocalProvisioner
)

// LocalStorageClass is StorageClass cclm-local, the cluster's default.
func LocalStorageClass() *storagev1.StorageClass {
	bindLate := storagev1.VolumeBindingWaitForFirstConsumer
	deleteWithClaim := corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{
		TypeMeta: metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        LocalStorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       LocalProvisioner,
		VolumeBindingMode: &bindLate,
		ReclaimPolicy:     &deleteWithClaim,
	}
}

// StorageClass installs LocalStorageClass. Its provisioner, volume binding
// mode and reclaim policy are immutable: an existing class of that name
// with other values makes the apply fail and say so.
func StorageClass(ctx context.Context, restConfig *rest.Config) error {
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return err
	}
	return applier.Apply(ctx, LocalStorageClass())
}
