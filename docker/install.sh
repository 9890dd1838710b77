#!/bin/sh
# Install dialer: the Dockerfile's only install step, and what the tests run
# (tests/unit/test_deploy.py) so the image's recipe cannot rot unnoticed.
#
#   install.sh SOURCE_DIR [PREFIX]       a virtualenv at PREFIX (default /opt/dialer)
#                                        with dialer and its dependencies
#   DIALER_SYSTEM=1 install.sh ...       also, as root: the `dialer` system user,
#                                        /etc/dialer, /etc/dialer/campaigns, /var/lib/dialer,
#                                        /etc/dialer/dialer.yaml and /etc/dialer/environment
#                                        (0640 root:dialer)
set -eu

src=${1:?usage: install.sh SOURCE_DIR [PREFIX]}
prefix=${2:-/opt/dialer}

python3 -m venv "$prefix"
"$prefix/bin/pip" install --no-cache-dir --disable-pip-version-check --quiet "$src"
"$prefix/bin/dialer" --version

if [ "${DIALER_SYSTEM:-0}" = 1 ]; then
    if ! getent passwd dialer >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/dialer --no-create-home \
            --shell /usr/sbin/nologin dialer
    fi
    install -d -m 0755 /etc/dialer /etc/dialer/campaigns
    install -d -m 0750 -o dialer -g dialer /var/lib/dialer
    # A starting config (AMI on the container's host, secrets from the environment)
    # and the secrets file systemd reads (EnvironmentFile=); an operator's own are
    # never overwritten. Both may hold secrets: root writes them, the daemon's
    # group reads them, nobody else.
    if [ ! -e /etc/dialer/dialer.yaml ]; then
        install -m 0640 -o root -g dialer "$src/docker/dialer.yaml" /etc/dialer/dialer.yaml
    fi
    if [ ! -e /etc/dialer/environment ]; then
        install -m 0640 -o root -g dialer "$src/docker/environment" /etc/dialer/environment
    fi
fi
