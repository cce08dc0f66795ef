// flocker-go-check drives the control service's v1 API with the unchanged Go client Kubernetes' in-tree
// flocker volume plugin used (github.com/clusterhq/flocker-go, the version k8s vendored), the way that plugin
// did. One step per run; each prints one JSON line and exits non-zero on any error.
//
//	provision -ip A -name N -size S   the dynamic provisioner: GetPrimaryUUID, CreateDataset (metadata name,
//	                                  size; the client waits for the dataset's state); a second CreateDataset of
//	                                  the same dataset_id must be refused as already existing (409)
//	attach -ip X -name N              the kubelet's SetUpAt on node X: GetDatasetID by name, GetDatasetState,
//	                                  GetPrimaryUUID, UpdatePrimaryForDataset if X is not the primary, then poll
//	                                  GetDatasetState until X is the primary and the state has a path
//	delete -name N                    the deleter: GetDatasetID, DeleteDataset; then poll until the name no longer
//	                                  resolves and the dataset has no state
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	flocker "github.com/clusterhq/flocker-go"
)

type result struct {
	Step      string                `json:"step"`
	DatasetID string                `json:"dataset_id,omitempty"`
	Primary   string                `json:"primary,omitempty"`
	Path      string                `json:"path,omitempty"`
	Nodes     []flocker.NodeState   `json:"nodes,omitempty"`
	Created   *flocker.DatasetState `json:"created,omitempty"`
	Conflict  string                `json:"conflict,omitempty"`
	Moved     bool                  `json:"moved,omitempty"`
	Updated   *flocker.DatasetState `json:"updated,omitempty"`
	Polls     int                   `json:"polls"`
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: flocker-go-check provision|attach|delete [flags]"))
	}
	step := os.Args[1]
	fs := flag.NewFlagSet(step, flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "control service host")
	port := fs.Int("port", 4523, "control service port")
	ca := fs.String("ca", "/etc/flocker/cluster.crt", "cluster CA certificate")
	cert := fs.String("cert", "/etc/flocker/apiuser.crt", "API user certificate")
	key := fs.String("key", "/etc/flocker/apiuser.key", "API user key")
	ip := fs.String("ip", "", "this node's address (the client finds its node by it in /v1/state/nodes)")
	name := fs.String("name", "", "dataset metadata name")
	size := fs.Int64("size", 0, "maximum_size in bytes (provision)")
	tick := fs.Duration("tick", time.Second, "poll interval (k8s: 1s)")
	timeout := fs.Duration("timeout", 2*time.Minute, "poll timeout (k8s: 2m)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	if *name == "" {
		fail(errors.New("-name is required"))
	}
	c, err := flocker.NewClient(*host, *port, *ip, *ca, *key, *cert)
	if err != nil {
		fail(fmt.Errorf("NewClient: %w", err))
	}
	r := result{Step: step}
	poll := func(what string, done func() (bool, error)) error {
		deadline := time.Now().Add(*timeout)
		for {
			r.Polls++
			ok, err := done()
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out after %s waiting for %s", *timeout, what)
			}
			time.Sleep(*tick)
		}
	}

	switch step {
	case "provision":
		if r.Nodes, err = c.ListNodes(); err != nil {
			fail(fmt.Errorf("ListNodes: %w", err))
		}
		if r.Primary, err = c.GetPrimaryUUID(); err != nil {
			fail(fmt.Errorf("GetPrimaryUUID: %w", err))
		}
		if id, err := c.GetDatasetID(*name); err == nil {
			fail(fmt.Errorf("GetDatasetID(%q) before the create: %s, want not found", *name, id))
		}
		// As k8s' provisioner: no dataset_id, the primary left to the client (GetPrimaryUUID again), a size.
		r.Created, err = c.CreateDataset(&flocker.CreateDatasetOptions{
			MaximumSize: *size,
			Metadata:    map[string]string{"name": *name, "type": "k8s-dynamic-prov"},
		})
		if err != nil {
			fail(fmt.Errorf("CreateDataset: %w", err))
		}
		r.DatasetID = r.Created.DatasetID
		if r.DatasetID == "" {
			fail(errors.New("CreateDataset returned a state without dataset_id"))
		}
		// The client maps 409 to its "already exists" error: the same dataset_id again must get it.
		_, err = c.CreateDataset(&flocker.CreateDatasetOptions{
			DatasetID: r.DatasetID, Primary: r.Primary, MaximumSize: *size,
			Metadata: map[string]string{"name": *name},
		})
		if err == nil || err.Error() != "The volume already exists" {
			fail(fmt.Errorf("CreateDataset of an existing dataset_id: %v, want The volume already exists", err))
		}
		r.Conflict = err.Error()
	case "attach":
		id, err := c.GetDatasetID(*name)
		if err != nil {
			fail(fmt.Errorf("GetDatasetID(%q): %w", *name, err))
		}
		r.DatasetID = id
		s, err := c.GetDatasetState(id)
		if err != nil {
			fail(fmt.Errorf("GetDatasetState(%s): %w", id, err))
		}
		me, err := c.GetPrimaryUUID()
		if err != nil {
			fail(fmt.Errorf("GetPrimaryUUID: %w", err))
		}
		if s.Primary != me {
			r.Moved = true
			if r.Updated, err = c.UpdatePrimaryForDataset(me, id); err != nil {
				fail(fmt.Errorf("UpdatePrimaryForDataset(%s, %s): %w", me, id, err))
			}
		}
		// k8s waited for Primary == this node, then bind-mounted /flocker/<id>; the path in the state is that.
		err = poll("the dataset at a path on this node", func() (bool, error) {
			s, err := c.GetDatasetState(id)
			if err != nil {
				return false, fmt.Errorf("GetDatasetState(%s): %w", id, err)
			}
			r.Primary, r.Path = s.Primary, s.Path
			return s.Primary == me && s.Path != "", nil
		})
		if err != nil {
			fail(err)
		}
	case "delete":
		id, err := c.GetDatasetID(*name)
		if err != nil {
			fail(fmt.Errorf("GetDatasetID(%q): %w", *name, err))
		}
		r.DatasetID = id
		if err := c.DeleteDataset(id); err != nil {
			fail(fmt.Errorf("DeleteDataset(%s): %w", id, err))
		}
		err = poll("the dataset gone", func() (bool, error) {
			if other, err := c.GetDatasetID(*name); err == nil {
				return false, fmt.Errorf("GetDatasetID(%q) after the delete: %s, want not found", *name, other)
			}
			_, err := c.GetDatasetState(id)
			if err != nil && err.Error() != "State not found by Dataset ID" {
				return false, fmt.Errorf("GetDatasetState(%s): %w", id, err)
			}
			return err != nil, nil
		})
		if err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown step %q", step))
	}
	out, err := json.Marshal(r)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "flocker-go-check:", err)
	os.Exit(1)
}
