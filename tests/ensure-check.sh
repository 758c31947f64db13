#!/bin/sh
# Make sure the Check unit-test library is installed: install it with apt-get when it is
# missing and we are root (or have password-less sudo); otherwise say what to install.
if pkg-config --exists check 2>/dev/null || [ -f /usr/include/check.h ]; then
    exit 0
fi
pkgs="check pkg-config"
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "tests need the Check library: run 'sudo apt-get install -y $pkgs' and retry" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests need the Check library (package 'check'); install it with your package manager" >&2
    exit 1
fi
echo "installing the Check test library: apt-get install -y $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq $pkgs >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq $pkgs; } || {
    echo "could not install Check: run 'sudo apt-get install -y $pkgs' and retry" >&2
    exit 1
}
