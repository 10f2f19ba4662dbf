#!/usr/bin/env bash
# RabbitMQ for the monitoring channel tests (tests/monitoring, marker `rabbitmq`) and
# bench/monitoring.py: Debian's rabbitmq-server, installed WITHOUT starting the system
# service (lib.sh's policy-rc.d). The tests start their own broker on 127.0.0.1 with its
# own node name, ports, data directory and Erlang cookie. Any system service the package
# started anyway (on a host with systemd) is stopped and disabled.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
install_debian_packages rabbitmq-server
if command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl is-enabled rabbitmq-server >/dev/null 2>&1; then
  systemctl disable --now rabbitmq-server >/dev/null 2>&1 && echo "stopped and disabled the system rabbitmq-server service"
fi
exit 0
