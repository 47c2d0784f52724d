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
Both run as the image would run them: with the ENV of docker/Dockerfile under the pod's own
variables, arguments and mounts, --check-config shows the ConfigMap's listener with its PROXY
protocol (an image variable such as SMTPHOOK_LISTEN would replace it), and the capabilities
they drop leave the binary's file capability (cap_net_bind_service) in the bounding set, or
the exec would fail.
"""

import json
import os
import re
import shlex
import shutil
import tempfile
import unittest

from smtphook_process import SOURCE_DIR, run_binary

try:
    import yaml
except ImportError:  # the suite's install step puts python3-yaml in
    yaml = None

K8S = os.path.join(SOURCE_DIR, "docker", "kubernetes")
DOCKERFILE = os.path.join(SOURCE_DIR, "docker", "Dockerfile")
# the variables smtphook reads as options (main.c's usage text)
OPTION_VARS = ("SMTPHOOK_CONFIG", "SMTPHOOK_LISTEN", "SMTPHOOK_WEBHOOK", "SMTPHOOK_HOSTNAME",
               "SMTPHOOK_TLS_CERT", "SMTPHOOK_TLS_KEY", "SMTPHOOK_ADMIN", "SMTPHOOK_DELIVERY",
               "SMTPHOOK_QUEUE_DIR")


def load(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def dockerfile_text():
    with open(DOCKERFILE, encoding="utf-8") as f:
        return f.read()


def image_env():
    """The environment docker/Dockerfile gives the image: the ENV instructions of its last
    stage, in either form (ENV K=V K2="V 2" ..., or the old ENV K V)."""
    lines = [ln for ln in dockerfile_text().splitlines() if not ln.lstrip().startswith("#")]
    env = {}
    for ins in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines():
        word, _, rest = ins.strip().partition(" ")
        if word.upper() == "FROM":
            env = {}
        elif word.upper() == "ENV":
            first = rest.split(None, 1)
            if "=" not in first[0]:
                env[first[0]] = first[1].strip() if len(first) > 1 else ""
                continue
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


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

    def test_capabilities_keep_the_binary_file_capability(self):
        # the image's binary has cap_net_bind_service as a file capability (effective bit):
        # exec fails with EPERM unless it is in the bounding set, so a pod that drops ALL
        # must add it back
        self.assertIn("setcap cap_net_bind_service=+ep", dockerfile_text())
        for name in ("deployment.yaml", "statefulset-queue.yaml"):
            c = load(name)["spec"]["template"]["spec"]["containers"][0]
            caps = c["securityContext"].get("capabilities", {})
            if "ALL" in caps.get("drop", []) or "NET_BIND_SERVICE" in caps.get("drop", []):
                self.assertIn("NET_BIND_SERVICE", caps.get("add", []), name)

    def check_as_the_image_runs(self, manifest, d):
        """smtphook --check-config run as the pod's container would run in the image: the
        Dockerfile's ENV, then the container's env and envFrom Secret, its args; each
        volume mount is a directory under d (paths in variables and args follow), the
        ConfigMap's config.json in the config volume. The CompletedProcess."""
        c = manifest["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["mountPath"]: os.path.join(d, m["name"]) for m in c["volumeMounts"]}
        for m, path in mounts.items():
            os.makedirs(path, exist_ok=True)
        config_dir = next(p for p, v in mounts.items() if v.endswith("/config"))
        with open(os.path.join(mounts[config_dir], "config.json"), "w", encoding="utf-8") as f:
            f.write(self.cm["data"]["config.json"])  # as it is: its spool /tmp is the host's

        def at(value):
            for m in sorted(mounts, key=len, reverse=True):
                if value == m or value.startswith(m.rstrip("/") + "/"):
                    return mounts[m] + value[len(m.rstrip("/")):]
            return value

        env = image_env()
        self.assertTrue(env, "no ENV in %s" % DOCKERFILE)
        for src in c.get("envFrom", []):
            self.assertEqual(src["secretRef"]["name"], self.secret["metadata"]["name"])
            env.update(self.secret["stringData"])
        env.update({e["name"]: e["value"] for e in c.get("env", [])})
        env = {k: at(v) if k.startswith("SMTPHOOK_") else v for k, v in env.items()}
        args = [at(a) for a in c.get("args", [])] + ["--check-config"]
        return run_binary(args, env=env, unset=[v for v in OPTION_VARS if v not in env])

    def test_image_environment_keeps_the_configmap_listeners(self):
        # the image's variables must not replace the mounted file's listeners: the PROXY
        # protocol (and trusted_proxies) of the ConfigMap's listener and its admin port stay
        want = []
        for listener in self.cfg["listeners"]:
            line = "listener %s: tls %s, proxy_protocol %s" % (
                listener["address"], listener.get("tls", "none"),
                listener.get("proxy_protocol", "none"))
            if listener.get("trusted_proxies"):
                line += ", trusted_proxies " + " ".join(listener["trusted_proxies"])
            want.append(line)
        want.append("admin " + self.cfg["admin"]["listen"])
        self.assertIn("proxy_protocol any", want[0])
        for name in ("deployment.yaml", "statefulset-queue.yaml"):
            d = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, d, True)
            p = self.check_as_the_image_runs(load(name), d)
            self.assertEqual(p.returncode, 0, name + ": " + p.stdout + p.stderr)
            lines = p.stdout.splitlines()
            self.assertTrue(lines[0].endswith("/config/config.json: configuration ok"), lines)
            self.assertEqual(lines[1:1 + len(want)], want, name + ":\n" + p.stdout + p.stderr)
            self.assertNotIn("warning", p.stderr, name)

    def test_proxy_protocol_from_the_cluster_only(self):
        listener = self.cfg["listeners"][0]
        self.assertIn(listener["proxy_protocol"], ("v1", "v2", "any"))
        self.assertTrue(listener["trusted_proxies"])


if __name__ == "__main__":
    unittest.main()
