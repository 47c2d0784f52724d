"""test_kubernetes.py - docker/kubernetes/: the manifests parse (PyYAML, Debian's
python3-yaml), and agree with each other and with the configuration they carry: the
ConfigMap's config.json passes smtphook --check-config with the Secret's values, the
container ports are its listener and admin port, the probes ask /livez and /readyz on the
admin port, the grace period outlasts the drain (shutdown_delay_ms + shutdown_timeout_ms),
the Service and the PodDisruptionBudget select the Deployment's pods, and the root file
system can be read-only (the spool on an emptyDir). statefulset-queue.yaml, the queue-mode
variant, runs the same container with SMTPHOOK_DELIVERY=queue and its queue directory on a
persistent volume per replica: the configuration passes --check-config with those
variables, and the volume claim template is mounted where the queue directory lies.
"""

import json
import os
import shutil
import tempfile
import unittest

from smtphook_process import SOURCE_DIR, run_binary

try:
    import yaml
except ImportError:  # the suite's install step puts python3-yaml in
    yaml = None

K8S = os.path.join(SOURCE_DIR, "docker", "kubernetes")


def load(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


@unittest.skipIf(yaml is None, "PyYAML not installed (apt-get install python3-yaml)")
class KubernetesTest(unittest.TestCase):

    def setUp(self):
        self.dep = load("deployment.yaml")
        self.cm = load("configmap.yaml")
        self.secret = load("secret.yaml")
        self.svc = load("service.yaml")
        self.pdb = load("pdb.yaml")
        self.cfg = json.loads(self.cm["data"]["config.json"])
        self.pod = self.dep["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]

    def test_kinds(self):
        self.assertEqual([d["kind"] for d in (self.dep, self.cm, self.secret, self.svc, self.pdb)],
                         ["Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"])

    def test_config_is_valid_with_the_secret(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.cm["data"]["config.json"])
        cfg = dict(self.cfg, spool={"directory": d})  # /tmp of the pod: here a temp dir
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        p = run_binary(["--check-config", "--config", path], env=self.secret["stringData"])
        os.unlink(path)
        os.rmdir(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_ports_and_probes_match_the_config(self):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        listen_port = int(self.cfg["listeners"][0]["address"].rsplit(":", 1)[1])
        admin_port = int(self.cfg["admin"]["listen"].rsplit(":", 1)[1])
        self.assertEqual(ports, {"smtp": listen_port, "admin": admin_port})
        self.assertEqual(self.container["livenessProbe"]["httpGet"],
                         {"path": "/livez", "port": "admin"})
        self.assertEqual(self.container["readinessProbe"]["httpGet"],
                         {"path": "/readyz", "port": "admin"})
        self.assertEqual(self.svc["spec"]["ports"][0]["targetPort"], "smtp")
        mount = [m for m in self.container["volumeMounts"] if m["name"] == "config"][0]
        self.assertIn(os.path.join(mount["mountPath"], "config.json"), self.container["args"])

    def test_grace_period_outlasts_the_drain(self):
        lim = self.cfg["limits"]
        drain_s = (lim["shutdown_delay_ms"] + lim["shutdown_timeout_ms"]) / 1000
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], drain_s)
        # the load balancer must see the pod unready within the delay
        probe = self.container["readinessProbe"]
        self.assertLessEqual(probe["periodSeconds"] * probe.get("failureThreshold", 3),
                             lim["shutdown_delay_ms"] / 1000)

    def test_selectors_agree(self):
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        for sel in (self.dep["spec"]["selector"]["matchLabels"], self.svc["spec"]["selector"],
                    self.pdb["spec"]["selector"]["matchLabels"]):
            self.assertTrue(set(sel.items()) <= set(labels.items()), sel)

    def test_read_only_root_with_the_spool_on_an_empty_dir(self):
        sc = self.container["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertTrue(self.pod["securityContext"]["runAsNonRoot"])
        spool = self.cfg["spool"]["directory"]
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        self.assertIn(spool, mounts)
        vol = [v for v in self.pod["volumes"] if v["name"] == mounts[spool]][0]
        self.assertIn("emptyDir", vol)

    def test_queue_statefulset_keeps_each_queue_on_its_own_volume(self):
        sts = load("statefulset-queue.yaml")
        self.assertEqual(sts["kind"], "StatefulSet")
        pod = sts["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"]}
        self.assertEqual(env["SMTPHOOK_DELIVERY"], "queue")
        claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        queue_dir = env["SMTPHOOK_QUEUE_DIR"]
        self.assertTrue(any(name in claims and (queue_dir + "/").startswith(path + "/")
                            for name, path in mounts.items()), (mounts, claims))
        # the rest as the Deployment has it: probes, ports, grace, selectors, read-only root
        self.assertEqual(c["ports"], self.container["ports"])
        self.assertEqual(c["readinessProbe"], self.container["readinessProbe"])
        self.assertEqual(c["livenessProbe"], self.container["livenessProbe"])
        self.assertEqual(pod["terminationGracePeriodSeconds"],
                         self.pod["terminationGracePeriodSeconds"])
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        labels = sts["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(set(self.svc["spec"]["selector"].items()) <= set(labels.items()))
        # the ConfigMap's configuration starts in queue mode with those variables
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(self.cfg, spool={"directory": d}), f)
        p = run_binary(["--check-config", "--config", path],
                       env=dict(self.secret["stringData"], SMTPHOOK_DELIVERY="queue",
                                SMTPHOOK_QUEUE_DIR=os.path.join(d, "queue")))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(os.path.isdir(os.path.join(d, "queue")))

    def test_proxy_protocol_from_the_cluster_only(self):
        listener = self.cfg["listeners"][0]
        self.assertIn(listener["proxy_protocol"], ("v1", "v2", "any"))
        self.assertTrue(listener["trusted_proxies"])


if __name__ == "__main__":
    unittest.main()
