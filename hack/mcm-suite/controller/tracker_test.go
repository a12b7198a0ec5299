// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/gardener/machine-controller-manager/pkg/apis/machine/v1alpha1"
	mcm "github.com/gardener/machine-controller-manager/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Labels our driver puts on everything it creates for a machine in the target
// cluster (src/contract.rs, module local).
const (
	vmSelector   = "app=machine,machine-provider=local"
	machineLabel = "machine"
)

// orphanTracker is the suite's resources tracker for provider local: a VM is a
// Pod (with its user-data Secret and ssh Service) in the cluster the class's
// credentials name, or else the target cluster, in providerSpec.namespace or else
// the control namespace. An orphan is such an object whose Machine is gone.
type orphanTracker struct {
	vms          *kubernetes.Clientset // where the Pods live
	control      *mcm.Clientset
	vmNamespace  string
	machineSpace string
}

func (t *orphanTracker) InitializeResourcesTracker(class *v1alpha1.MachineClass, secretData map[string][]byte, _ string) error {
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("CONTROL_KUBECONFIG"))
	if err != nil {
		return err
	}
	if t.control, err = mcm.NewForConfig(config); err != nil {
		return err
	}
	if kubeconfig, ok := secretData["kubeconfig"]; ok {
		config, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
		if err != nil {
			return fmt.Errorf("the class credentials' kubeconfig: %w", err)
		}
		if t.vms, err = kubernetes.NewForConfig(config); err != nil {
			return err
		}
	} else if t.vms, err = clientFor(os.Getenv("TARGET_KUBECONFIG")); err != nil {
		return err
	}
	t.machineSpace = namespace()
	t.vmNamespace = t.machineSpace
	var spec struct {
		Namespace string `json:"namespace"`
	}
	if class.ProviderSpec.Raw != nil {
		if err := json.Unmarshal(class.ProviderSpec.Raw, &spec); err != nil {
			return fmt.Errorf("providerSpec of %s: %w", class.Name, err)
		}
	}
	if spec.Namespace != "" {
		t.vmNamespace = spec.Namespace
	}
	return nil
}

// IsOrphanedResourcesAvailable is true while a machine Pod, Secret or Service is
// left whose Machine does not exist (or while that cannot be told).
func (t *orphanTracker) IsOrphanedResourcesAvailable() bool {
	ctx := context.Background()
	list := metav1.ListOptions{LabelSelector: vmSelector}
	owners := map[string][]string{} // machine name -> objects of it
	pods, err := t.vms.CoreV1().Pods(t.vmNamespace).List(ctx, list)
	if err != nil {
		log.Printf("orphan check: listing Pods: %v", err)
		return true
	}
	for _, o := range pods.Items {
		owners[o.Labels[machineLabel]] = append(owners[o.Labels[machineLabel]], "Pod/"+o.Name)
	}
	secrets, err := t.vms.CoreV1().Secrets(t.vmNamespace).List(ctx, list)
	if err != nil {
		log.Printf("orphan check: listing Secrets: %v", err)
		return true
	}
	for _, o := range secrets.Items {
		owners[o.Labels[machineLabel]] = append(owners[o.Labels[machineLabel]], "Secret/"+o.Name)
	}
	services, err := t.vms.CoreV1().Services(t.vmNamespace).List(ctx, list)
	if err != nil {
		log.Printf("orphan check: listing Services: %v", err)
		return true
	}
	for _, o := range services.Items {
		owners[o.Labels[machineLabel]] = append(owners[o.Labels[machineLabel]], "Service/"+o.Name)
	}
	orphans := false
	for machine, objects := range owners {
		_, err := t.control.MachineV1alpha1().Machines(t.machineSpace).Get(ctx, machine, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || machine == "" {
			log.Printf("orphan check: %v in %s have no Machine %q", objects, t.vmNamespace, machine)
			orphans = true
		} else if err != nil {
			log.Printf("orphan check: getting Machine %s: %v", machine, err)
			orphans = true
		}
	}
	return orphans
}
