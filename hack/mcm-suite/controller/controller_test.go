// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

// Package controller runs MCM's provider integration suite
// (github.com/gardener/machine-controller-manager/pkg/test/integration/common)
// against this provider, the way a provider repository's
// test/integration/controller does. MCM's framework expects this package three
// directories below the repository root: it runs `make --directory=../../.. start`
// (our controller), `make --directory=../../../dev/mcm start` (MCM from its source)
// and reads ../../../.ci/controllers-test. hack/mcm-suite.sh prepares all of that.
package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gardener/machine-controller-manager/pkg/test/integration/common"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// classSecret is the Secret the test classes name (MCM's docs call it test-mc-secret).
const classSecret = "test-mc-secret"

func TestController(t *testing.T) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	ginkgo.RunSpecs(t, "MCM v0.62.1 provider integration suite: provider local")
}

// The framework's defaults: 300 s per Eventually, polled every 2 s.
var framework = common.NewIntegrationTestFramework(&orphanTracker{})

var _ = ginkgo.BeforeSuite(func() {
	// The Secret first: SetupBeforeSuite reads the class's Secret when it
	// initialises the orphan tracker.
	gomega.Expect(ensureClassSecret()).To(gomega.Succeed())
	framework.SetupBeforeSuite()
})

var _ = ginkgo.AfterSuite(func() {
	framework.Cleanup()
	client, err := controlClient()
	if err == nil {
		err = client.CoreV1().Secrets(namespace()).
			Delete(context.Background(), classSecret, metav1.DeleteOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		ginkgo.GinkgoWriter.Printf("deleting Secret %s: %v\n", classSecret, err)
	}
})

var _ = ginkgo.Describe("provider local", func() {
	framework.BeforeEachCheck()
	framework.ControllerTests()
})

// namespace is the control namespace the framework uses (it sets the variable
// itself when it was empty).
func namespace() string {
	if ns := os.Getenv("CONTROL_CLUSTER_NAMESPACE"); ns != "" {
		return ns
	}
	return "default"
}

// controlClient is a client of the control cluster (CONTROL_KUBECONFIG, as the
// framework reads it).
func controlClient() (*kubernetes.Clientset, error) {
	return clientFor(os.Getenv("CONTROL_KUBECONFIG"))
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(config)
}

// ensureClassSecret creates the Secret of the test classes, or replaces its data.
func ensureClassSecret() error {
	client, err := controlClient()
	if err != nil {
		return err
	}
	want, err := classSecretObject()
	if err != nil {
		return err
	}
	secrets := client.CoreV1().Secrets(want.Namespace)
	ctx := context.Background()
	have, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		have.Data = nil
		have.StringData = want.StringData
		have.Type = want.Type
		_, err = secrets.Update(ctx, have, metav1.UpdateOptions{})
	}
	return err
}

// classSecretObject is kubernetes/secret.yaml (the sample's user data, with the
// placeholders our controller fills in) under the name the test classes use.
func classSecretObject() (*corev1.Secret, error) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "kubernetes", "secret.yaml"))
	if err != nil {
		return nil, err
	}
	sample := &corev1.Secret{}
	if err := yaml.Unmarshal(data, sample); err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: classSecret, Namespace: namespace()},
		Type:       sample.Type,
		StringData: sample.StringData,
	}, nil
}
