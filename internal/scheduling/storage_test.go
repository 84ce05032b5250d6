package scheduling

import (
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultStorageClass(t *testing.T) {
	testNow := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	class := func(name string, isDefault bool, age time.Duration) storagev1.StorageClass {
		c := storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(testNow.Add(-age))}}
		if isDefault {
			c.Annotations = map[string]string{DefaultStorageClassAnnotation: "true"}
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		classes []storagev1.StorageClass
		want    string
	}{
		{"none", nil, ""},
		{"no default", []storagev1.StorageClass{class("a", false, 0)}, ""},
		{"the default", []storagev1.StorageClass{class("a", false, 0), class("cclm-local", true, time.Hour)}, "cclm-local"},
		{"the newest of two defaults", []storagev1.StorageClass{class("old", true, time.Hour), class("new", true, time.Minute)}, "new"},
		{"the beta annotation", []storagev1.StorageClass{{ObjectMeta: metav1.ObjectMeta{Name: "b", Annotations: map[string]string{"storageclass.beta.kubernetes.io/is-default-class": "true"}}}}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DefaultStorageClass(tc.classes); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
