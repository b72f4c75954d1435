"""`hazardwatch demo`: the whole system on one machine, so a new user sees it work in a minute.

It starts a private Mosquitto (or uses `--broker`), one `hazardwatch central` on SQLite and one
`hazardwatch edge`, each as a child process with a generated config in a temporary folder. The edge's
cameras replay scenes the project renders itself (`edge/demo_scene.py`) or whatever `--source` names,
and the shipped models really detect on them: no alert is injected.

Why child processes: each part runs exactly as in production (same command, same config schema), a
crash in one is visible as an exit code, and stopping is plain signals. The children get their own
process group, so the terminal's Ctrl-C reaches only the demo, which stops them in order (edge, then
central, then the broker); PR_SET_PDEATHSIG makes the kernel stop them if the demo itself is killed.

The embedded broker is Mosquitto when it is installed (MQTT 5, shared subscriptions, as in
production). Otherwise it is amqtt, a pure-Python broker from PyPI (`pip install '.[demo]'`), so a
fresh machine needs nothing else. amqtt (0.12) speaks MQTT 3.1.1 only and has no shared
subscriptions, so edge and central are configured for 3.1.1 and central subscribes without `$share`,
which is fine for the demo's single central instance.

Modules: supervisor (the children of one run), brokers (embedded Mosquitto or amqtt), configs (the
generated configs, cameras and models), cli (argparse and the run loop).
"""

from hazardwatch.demo.cli import register
from hazardwatch.demo.configs import shipped_models
from hazardwatch.procs import port_free

__all__ = ["port_free", "register", "shipped_models"]
