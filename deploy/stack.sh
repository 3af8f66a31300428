#!/usr/bin/env bash
# deploy/stack.sh: billy's local stack, on 127.0.0.1 only.
#
#   - one Apache Kafka 4.x node (KRaft, broker+controller) run from Maven Central jars
#   - one private PostgreSQL cluster (or an existing database given by BILLY_DATABASE_URL)
#   - the Balance emulator (balance_emulator/, a Python process; state in .state/balance)
#
# Everything lives in <repo>/.state/ (gitignored). See deploy/README.md.
#
# Usage: deploy/stack.sh up|down|status|env
#        deploy/stack.sh kafka-up|kafka-down|kafka-kill
#        deploy/stack.sh pg-up|pg-down|pg-kill
#        deploy/stack.sh emulator-up|emulator-down|emulator-kill   (the Balance emulator)
#        deploy/stack.sh kafka-tool <main class> [args...]   (CLI tools on the broker's jars)
#
# Security (deploy/README.md, "Security"): BILLY_KAFKA_SECURITY=sasl runs the broker with
# SASL/SCRAM-SHA-512 (+ a SASL_SSL listener, stack-made CA) and deny-by-default ACLs;
# BILLY_STATE_DIR runs a second, separate stack (with other ports) from another folder.
#
# Every subcommand is idempotent: `up` on a running stack only reports, `down` on a
# stopped one does nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
STATE="${BILLY_STATE_DIR:-$ROOT/.state}"
STACK_ENV="$STATE/stack.env"
HOST=127.0.0.1  # the literal loopback address: never "localhost" or an empty host

# --- Kafka settings ------------------------------------------------------------------
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$ROOT/.state/kafka/libs"  # shared by every state dir (BILLY_STATE_DIR)
KAFKA_MARKER="$KAFKA_LIBS/.complete"       # written only after a successful copy
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
KAFKA_FORMATTED_FILE="$KAFKA_DIR/formatted.controller-port"
KAFKA_POM="$HERE/kafka/pom.xml"
KAFKA_LOG4J="$HERE/kafka/log4j2.properties"
KAFKA_TOOLS_LOG4J="$HERE/kafka/log4j2-tools.properties"
KAFKA_PORT="${BILLY_KAFKA_PORT:-19092}"
KAFKA_CPORT="${BILLY_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_SSL_PORT="${BILLY_KAFKA_SSL_PORT:-19094}"   # SASL_SSL listener (security mode sasl)
# plaintext: one PLAINTEXT client listener, no authorizer. sasl: SASL/SCRAM-SHA-512 on
# $KAFKA_PORT (SASL_PLAINTEXT, loopback) and $KAFKA_SSL_PORT (SASL_SSL), StandardAuthorizer,
# deny by default; the controller listener stays PLAINTEXT on loopback (KRaft cannot use
# SCRAM there) and its principal ANONYMOUS is a super user.
# Default: sasl for a new data dir; a formatted one keeps the mode it was formatted in (so a
# broker restarted by a fault test comes back as it was). BILLY_KAFKA_SECURITY overrides.
KAFKA_SECURITY_ASKED="${BILLY_KAFKA_SECURITY:-}"
KAFKA_SECURITY="${BILLY_KAFKA_SECURITY:-sasl}"
KAFKA_SECRETS="$KAFKA_DIR/secrets"          # mode 700; one <principal>.password per file
KAFKA_TLS="$KAFKA_DIR/tls"                  # the stack's CA and the broker's certificate
KAFKA_ADMIN_PROPS="$KAFKA_SECRETS/admin.properties"  # the super user, for the CLI tools
KAFKA_SCRAM_MARKER="$KAFKA_DIR/scram-users"  # users made for this data dir
KAFKA_LOCAL_ACL_MARKER="$KAFKA_DIR/local-acls"
# The stack's own principals: the super user (billy's bootstrap: ACLs, credentials) and the
# combined local principal every local role and test uses (stack.env).
KAFKA_ADMIN_USER="admin"
KAFKA_LOCAL_USER="billy"
KAFKA_VERSION="${BILLY_KAFKA_VERSION:-}"   # empty: the version pinned in pom.xml
# The broker's heap and collector. A fixed heap with a 384 MiB young generation and the
# parallel collector: at 2,000 commands/s the broker allocates ~150 MiB/s, and G1 with a
# 20 ms pause goal (Kafka's usual flags) kept its young generation small: 100-150 pauses
# per 100 s, up to 185 ms each on two busy cores, which made the p99 of one hot wallet
# (87-190 ms). This: 17-26 pauses, at most 77-102 ms, hot p99 44-78 ms (bench/README.md,
# issue 12). The price: a full collection (a few hundred ms) when the old generation fills,
# ~20 minutes into a sustained load of that rate; G1 collects it concurrently instead.
KAFKA_HEAP="${BILLY_KAFKA_HEAP:--Xms768m -Xmx768m -Xmn384m}"
KAFKA_GC="${BILLY_KAFKA_GC:--XX:+UseParallelGC}"
# Always, whatever the heap and collector: the parallel collector makes a full collection
# whenever the broker's loaded classes pass the metaspace threshold, first at ~21 MiB; a
# broker in use holds ~60, so a young one stopped for 0.6 s at a time (a hot wallet's p99
# 745 ms, bench/README.md). 128 MiB is only the first threshold, not memory taken (Kafka's
# own recommended flags set 96m).
KAFKA_METASPACE="-XX:MetaspaceSize=128m"
# broker.session.timeout.ms: 30 s keeps two busy cores from fencing the broker, but it
# is also how long a restart after SIGKILL waits (DUPLICATE_BROKER_REGISTRATION until
# the dead incarnation's session expires). Fault tests may lower it.
KAFKA_SESSION_TIMEOUT_MS="${BILLY_KAFKA_SESSION_TIMEOUT_MS:-30000}"
KAFKA_READY_TIMEOUT=90
KAFKA_STOP_TIMEOUT=30

# --- PostgreSQL settings -------------------------------------------------------------
PG_DIR="$STATE/pg"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"                       # unix socket directory
PG_LOGS="$PG_DIR/logs"
PG_PORT="${BILLY_PG_PORT:-55432}"
PG_ROLE=billy
PG_DB=billy
PG_EXTERNAL_URL="${BILLY_DATABASE_URL:-}"

# --- Balance emulator settings -------------------------------------------------------
BALANCE_DIR="$STATE/balance"
BALANCE_PIDFILE="$BALANCE_DIR/emulator.pid"
BALANCE_LOG="$BALANCE_DIR/emulator.log"
BALANCE_DB="$BALANCE_DIR/emulator.sqlite3"
BALANCE_SECRET_FILE="$BALANCE_DIR/notify.secret"
BALANCE_PORT="${BILLY_BALANCE_PORT:-18090}"
BALANCE_NOTIFY_URL="${BILLY_BALANCE_NOTIFY_URL:-http://$HOST:8081/balance}"  # billy's intake
BALANCE_NOTIFY_FORM="${BILLY_BALANCE_NOTIFY_FORM:-json}"
BALANCE_PYTHON="${BILLY_BALANCE_PYTHON:-python3.11}"
BALANCE_READY_TIMEOUT=20
BALANCE_STOP_TIMEOUT=10

say() { printf '%s\n' "$*"; }
die() { printf 'stack.sh: error: %s\n' "$*" >&2; exit 1; }

# Serialise mutating subcommands (two `make up` at once). fd 9 must not leak into the
# daemons we start, or they would hold the lock forever: every start closes it (9>&-).
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.stack.lock"
  flock -w 600 9 || die "another deploy/stack.sh still holds $STATE/.stack.lock"
}

# The kernel hands out ports of ip_local_port_range to outgoing connections; a listening
# port inside it can be taken by a client socket while its server is down, and then the
# restart fails ("Address already in use"; seen in a long fault run: the SASL_SSL port went
# to a client while the broker restarted). As root, reserve the stack's ports (added to
# ip_local_reserved_ports, never removed there); otherwise say once why a restart may fail.
port_reserved() {  # is port $1 in the reserved list $2 ("a-b,c,...")?
  local item
  for item in ${2//,/ }; do
    (($1 >= ${item%-*} && $1 <= ${item#*-})) && return 0
  done
  return 1
}

reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports range low high p current wanted=()
  range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || return 0
  read -r low high <<<"$range"
  current=$(cat "$file" 2>/dev/null || true)
  for p in "$KAFKA_PORT" "$KAFKA_CPORT" "$KAFKA_SSL_PORT" "$PG_PORT" "$BALANCE_PORT"; do
    ((p >= low && p <= high)) && ! port_reserved "$p" "$current" && wanted+=("$p")
  done
  ((${#wanted[@]})) || return 0
  if [[ -w $file ]]; then
    printf '%s\n' "${current:+$current,}$(IFS=,; echo "${wanted[*]}")" >"$file" 2>/dev/null ||
      say "stack: could not reserve ports ${wanted[*]} (a restart may find one taken by a client)"
  else
    say "stack: ports ${wanted[*]} are in the kernel's ephemeral range $low-$high and cannot be reserved without root: a restart may find one taken by a client socket"
  fi
}

rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# Does something accept TCP connections on 127.0.0.1:$1?
port_accepts() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Pids listening on TCP port $1 (any local address, this network namespace). Exit
# status 1 when nothing listens; prints "?" when the owner cannot be found.
port_listeners() {
  python3 - "$1" <<'PY'
import os, sys
port = int(sys.argv[1])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        f = row.split()
        if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
            inodes.add("socket:[%s]" % f[9])
if not inodes:
    sys.exit(1)
pids = set()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    pids.add(pid)
                    break
            except OSError:
                pass
    except OSError:
        pass
print(" ".join(sorted(pids, key=int)) or "?")
PY
}

describe_pids() {
  local p
  for p in $1; do
    [[ $p == "?" ]] && { say "    (owner unknown)"; continue; }
    say "    pid $p: $(cmdline "$p" | cut -c1-200)"
  done
}

# =====================================================================================
# Kafka
# =====================================================================================

need_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found on PATH: Kafka 4.x needs Java 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
  local out v
  out=$(java -version 2>&1) || die "java is on PATH but does not run: $out"
  v=$(awk -F'"' '/version/ { print $2; exit }' <<<"$out")
  local major=${v%%.*}
  [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$v")
  if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "java $v found, but Kafka 4.x needs Java 17 or newer"
  fi
}

kafka_java() {  # run a Kafka CLI class on the broker's jars, quietly
  java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" "$@"
}

# The jar set is keyed by the pom's content and the version override, so editing the
# pom refetches; otherwise the copy is done once and cached.
kafka_libs_key() { printf '%s %s\n' "$(sha256sum "$KAFKA_POM" | cut -c1-16)" "${KAFKA_VERSION:-pom}"; }

kafka_fetch() {
  local key
  key=$(kafka_libs_key)
  if [[ -f $KAFKA_MARKER && "$(cat "$KAFKA_MARKER")" == "$key" ]]; then
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1 || ! mvn -v >/dev/null 2>&1; then
    die "mvn not found (or does not run): the Kafka jars are fetched from Maven Central with Maven (Debian: apt-get install -y maven)"
  fi
  mkdir -p "$KAFKA_DIR" "$KAFKA_LOGS"
  local tmp="$KAFKA_DIR/libs.tmp" mvnlog="$KAFKA_LOGS/mvn.log" t0=$SECONDS
  rm -rf "$tmp"
  # -U: retry downloads that failed before (Maven caches failures in ~/.m2 otherwise)
  local args=(-B -ntp -U -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies
    -DincludeScope=runtime -DoutputDirectory="$tmp")
  [[ -n $KAFKA_VERSION ]] && args+=("-Dkafka.version=$KAFKA_VERSION")
  say "kafka: fetching the broker's jars with Maven into .state/kafka/libs (once; log: $mvnlog) ..."
  if ! mvn "${args[@]}" >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    local errs
    errs=$(grep -E '^\[ERROR\] [^ ]' "$mvnlog" | grep -vE 'To see the full|Re-run Maven|For more information|\[Help 1\] http' || true)
    if [[ -n $errs ]]; then head -n 8 <<<"$errs" >&2; else tail -n 20 "$mvnlog" >&2; fi
    if grep -Eqi 'UnknownHost|Unknown host|Connection refused|Network is unreachable|No route to host|connect timed out|Connection timed out|Could not transfer|transfer failed|Remote host terminated' "$mvnlog"; then
      die "Maven could not download from Maven Central (unreachable? proxy? see $mvnlog)"
    elif grep -Eqi 'Could not find artifact|Could not resolve dependencies|was not found in' "$mvnlog"; then
      die "Maven Central answered but the Kafka artifacts did not resolve (version ${KAFKA_VERSION:-from pom.xml}; try BILLY_KAFKA_VERSION=4.3.1; see $mvnlog)"
    fi
    die "mvn failed fetching the Kafka jars (see $mvnlog)"
  fi
  local j
  for j in "kafka_2.13-*.jar" "kafka-tools-[0-9]*.jar" "kafka-clients-*.jar" "log4j-slf4j-impl-*.jar" "log4j-core-*.jar" "slf4j-api-*.jar"; do
    compgen -G "$tmp/$j" >/dev/null || die "mvn succeeded but $j is missing from the copied jars (see $mvnlog)"
  done
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  printf '%s\n' "$key" >"$KAFKA_MARKER"
  say "kafka: $(compgen -G "$KAFKA_LIBS/*.jar" | wc -l) jars ($(du -sm "$KAFKA_LIBS" | cut -f1) MiB) fetched in $((SECONDS - t0)) s"
}

kafka_version() {
  local j
  j=$(compgen -G "$KAFKA_LIBS/kafka-clients-*.jar" | head -n1) || true
  j=${j##*/kafka-clients-}
  printf '%s' "${j%.jar}"
}

kafka_check_security() {
  [[ $KAFKA_SECURITY == plaintext || $KAFKA_SECURITY == sasl ]] ||
    die "BILLY_KAFKA_SECURITY must be plaintext or sasl, not '$KAFKA_SECURITY'"
}

kafka_default_mode() {
  [[ -z $KAFKA_SECURITY_ASKED && -f $KAFKA_DATA/meta.properties ]] || return 0
  if grep -qx "$KAFKA_ADMIN_USER" "$KAFKA_SCRAM_MARKER" 2>/dev/null; then
    KAFKA_SECURITY=sasl
  else
    KAFKA_SECURITY=plaintext
  fi
}

# A running broker keeps the mode it was started in (its server.properties says which);
# stack.env must describe that broker, not the mode asked for now.
kafka_running_mode() {
  local pid
  pid=$(kafka_pid) || return 0
  local running=plaintext
  grep -q '^authorizer.class.name=' "$KAFKA_PROPS" 2>/dev/null && running=sasl
  if [[ $running != "$KAFKA_SECURITY" ]]; then
    say "kafka: the running broker (pid $pid) is in security mode $running, not $KAFKA_SECURITY: restart it to switch (deploy/stack.sh kafka-down; kafka-up)" >&2
    KAFKA_SECURITY=$running
  fi
}

# A password made once at random (hex: no commas or quotes, which SCRAM and JAAS
# configs cannot take), kept in .state/kafka/secrets/<name>.password (mode 600), never printed.
kafka_secret() {
  local f="$KAFKA_SECRETS/$1.password"
  if [[ ! -s $f ]]; then
    (umask 077 && mkdir -p "$KAFKA_SECRETS" &&
      od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$f.tmp" && mv "$f.tmp" "$f")
  fi
  cat "$f"
}

# The stack's CA and the broker's certificate for 127.0.0.1 (made once with openssl):
# tls/ca.pem is what clients trust (BILLY_KAFKA_SSL_CA_LOCATION); tls/broker.p12 the broker's
# keystore (PKCS12, password in secrets/keystore.password). Private keys are mode 600.
kafka_tls_make() {  # keystore password; run in a subshell
  set -e
  cd "$KAFKA_TLS"
  umask 077
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
    -subj "/CN=billy local stack CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=$HOST"
  printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$HOST" >broker.ext
  openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem \
    -days 825 -extfile broker.ext
  # The password goes through a file descriptor: a command line is visible to every user.
  openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
    -out broker.p12.tmp -passout fd:3 3<<<"$1"
  mv broker.p12.tmp broker.p12
  chmod 644 ca.pem
  rm -f broker.csr broker.ext
}

kafka_tls_once() {
  [[ -s $KAFKA_TLS/broker.p12 && -s $KAFKA_TLS/ca.pem ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found: the SASL_SSL listener's certificates are made with it (apt-get install -y openssl)"
  local pw out
  pw=$(kafka_secret keystore)
  mkdir -p "$KAFKA_TLS"
  chmod 700 "$KAFKA_TLS"
  if ! out=$( (kafka_tls_make "$pw") 2>&1); then
    printf '%s\n' "$out" >&2
    die "making the stack's CA and broker certificate with openssl failed (reset: rm -rf $KAFKA_TLS)"
  fi
  say "kafka: made a CA and a certificate for $HOST in $KAFKA_TLS (clients trust tls/ca.pem)"
}

# Client properties of the super user for Kafka's CLI tools (mode 600).
kafka_admin_props() {
  local pw
  pw=$(kafka_secret "$KAFKA_ADMIN_USER")
  (
    umask 077
    cat >"$KAFKA_ADMIN_PROPS.tmp" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_ADMIN_USER" password="$pw";
EOF
  )
  mv "$KAFKA_ADMIN_PROPS.tmp" "$KAFKA_ADMIN_PROPS"
}

kafka_write_props() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CPORT"
  local inter=PLAINTEXT map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ $KAFKA_SECURITY == sasl ]]; then
    listeners="SASL_PLAINTEXT://$HOST:$KAFKA_PORT,SASL_SSL://$HOST:$KAFKA_SSL_PORT,CONTROLLER://$HOST:$KAFKA_CPORT"
    inter=SASL_PLAINTEXT map="CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
  fi
  # Mode 600: in sasl mode the file holds the super user's and the keystore's passwords.
  (umask 077 && : >"$KAFKA_PROPS")
  chmod 600 "$KAFKA_PROPS"
  cat >"$KAFKA_PROPS" <<EOF
# Written by deploy/stack.sh on every start; edit the script, not this file.
# One node, KRaft, broker and controller in one process, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CPORT
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=$inter
listener.security.protocol.map=$map
log.dirs=$KAFKA_DATA

# A single node: every replication factor 1 and min ISR 1, or the group coordinator
# and transactions never start (internal topics default to RF 3, min ISR 2).
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=3
num.partitions=1

# billy creates its own topics.
auto.create.topics.enable=false

# Small and quick on a two-core box.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
# A deleted topic's files go a second after its deletion, not a minute (the default): every
# bench run deletes its topics (about 150 partitions), and a minute later their log
# files were deleted in the middle of the next run, and billed to it.
log.segment.delete.delay.ms=1000
# Two busy cores can otherwise get the broker fenced by its own controller. It is also
# how long a restart after SIGKILL takes: the new incarnation cannot register until the
# killed one's session expires (BILLY_KAFKA_SESSION_TIMEOUT_MS).
broker.session.timeout.ms=$KAFKA_SESSION_TIMEOUT_MS
# After a SIGKILL the new incarnation loads the transaction coordinator before it can
# register (DUPLICATE_BROKER_REGISTRATION until the dead one's session expires; the
# controller then fences it and every partition is leaderless for a moment). A timed-out
# transaction aborted by the coordinator in that window gets no marker on the leaderless
# partitions (Kafka skips them as "likely deleted"): a hanging transaction that stops
# read_committed readers for good (deploy/RUNBOOK.md, "Relay stuck"; found by the long
# fault profile). The first timeout check comes one interval after start: keep it past
# the session timeout, so it runs once partitions have their leader again.
transaction.abort.timed.out.transaction.cleanup.interval.ms=$((KAFKA_SESSION_TIMEOUT_MS * 2))
EOF
  [[ $KAFKA_SECURITY == sasl ]] || return 0
  local admin_pw ks_pw
  admin_pw=$(kafka_secret "$KAFKA_ADMIN_USER")
  ks_pw=$(kafka_secret keystore)
  cat >>"$KAFKA_PROPS" <<EOF

# Security (BILLY_KAFKA_SECURITY=sasl): SCRAM-SHA-512 on both client listeners, TLS on
# SASL_SSL, ACLs deny by default. The controller listener is PLAINTEXT on loopback only;
# its principal ANONYMOUS must be a super user or the broker cannot register with it.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_ADMIN_USER" password="$admin_pw";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_TLS/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$ks_pw
listener.name.sasl_ssl.ssl.key.password=$ks_pw
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$KAFKA_ADMIN_USER;User:ANONYMOUS
EOF
}

# Format the data dir once; the cluster id is kept so a reset data dir gets the same one.
kafka_format_once() {
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
    if [[ ! -f $KAFKA_CLUSTER_ID_FILE ]]; then
      sed -n 's/^cluster\.id=//p' "$KAFKA_DATA/meta.properties" >"$KAFKA_CLUSTER_ID_FILE"
    fi
    if [[ -f $KAFKA_FORMATTED_FILE && "$(cat "$KAFKA_FORMATTED_FILE")" != "$KAFKA_CPORT" ]]; then
      die "the Kafka data dir was formatted with controller port $(cat "$KAFKA_FORMATTED_FILE") (it is stored in the KRaft voter set), not $KAFKA_CPORT: use that port, or reset with: make down && rm -rf .state/kafka/data"
    fi
    return 0
  fi
  local id
  if [[ -s $KAFKA_CLUSTER_ID_FILE ]]; then
    id=$(cat "$KAFKA_CLUSTER_ID_FILE")
  else
    id=$(kafka_java kafka.tools.StorageTool random-uuid) || die "kafka.tools.StorageTool random-uuid failed"
    printf '%s\n' "$id" >"$KAFKA_CLUSTER_ID_FILE"
  fi
  say "kafka: formatting $KAFKA_DATA (cluster id $id)"
  local out
  local scram=()
  if [[ $KAFKA_SECURITY == sasl ]]; then
    local u
    for u in "$KAFKA_ADMIN_USER" "$KAFKA_LOCAL_USER"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(kafka_secret "$u")]")
    done
  fi
  if ! out=$(kafka_java kafka.tools.StorageTool format --standalone -t "$id" -c "$KAFKA_PROPS" "${scram[@]}" 2>&1); then
    printf '%s\n' "$out" >&2
    die "formatting the Kafka data dir failed (a half-formatted dir? reset: rm -rf .state/kafka/data)"
  fi
  printf '%s\n' "$KAFKA_CPORT" >"$KAFKA_FORMATTED_FILE"
  rm -f "$KAFKA_LOCAL_ACL_MARKER"  # a new cluster has no ACLs yet
  if [[ $KAFKA_SECURITY == sasl ]]; then
    printf '%s\n' "$KAFKA_ADMIN_USER" "$KAFKA_LOCAL_USER" >"$KAFKA_SCRAM_MARKER"
  else
    : >"$KAFKA_SCRAM_MARKER"
  fi
}

# SCRAM users are written at format time (the super user must exist before the broker can
# even talk to itself, and KRaft's controller listener cannot create them: AlterUserScram-
# Credentials is "not supported when communicating directly with the controller quorum").
# A data dir formatted in plaintext mode therefore cannot be secured in place.
kafka_check_scram() {
  local u
  for u in "$KAFKA_ADMIN_USER" "$KAFKA_LOCAL_USER"; do
    grep -qx "$u" "$KAFKA_SCRAM_MARKER" 2>/dev/null && continue
    die "the Kafka data dir $KAFKA_DATA was formatted without the SCRAM user $u (in plaintext mode): security mode sasl needs a data dir formatted in it. Reset Kafka's data (topics and offsets go): deploy/stack.sh kafka-down && rm -rf $KAFKA_DATA; or run a separate secured stack with BILLY_STATE_DIR (deploy/README.md, Security)"
  done
}

# The combined local principal (stack.env): every topic, group and transactional id, and
# creating topics; no ACL or credential changes (those stay with the super user). Local
# only: tests use fresh topic prefixes, so it cannot be narrowed to one deployment.
kafka_local_acls_once() {
  [[ -f $KAFKA_LOCAL_ACL_MARKER ]] && return 0
  local p="User:$KAFKA_LOCAL_USER" base=(--bootstrap-server "$HOST:$KAFKA_PORT" --command-config "$KAFKA_ADMIN_PROPS" --add --allow-principal)
  kafka_java org.apache.kafka.tools.AclCommand "${base[@]}" "$p" --operation All \
    --topic '*' --group '*' --transactional-id '*' >/dev/null ||
    die "AclCommand could not grant the local principal $KAFKA_LOCAL_USER its ACLs"
  kafka_java org.apache.kafka.tools.AclCommand "${base[@]}" "$p" --cluster \
    --operation Create --operation Describe --operation DescribeConfigs --operation IdempotentWrite >/dev/null ||
    die "AclCommand could not grant the local principal $KAFKA_LOCAL_USER its cluster ACLs"
  : >"$KAFKA_LOCAL_ACL_MARKER"
  say "kafka: granted the local principal $KAFKA_LOCAL_USER its ACLs (all topics, groups, transactional ids)"
}

is_our_kafka() {  # pid $1 is a live broker started on our server.properties
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  local c
  c=$(cmdline "$1")
  [[ $c == *"kafka.Kafka $KAFKA_PROPS"* ]]
}

kafka_pid() {  # prints the broker's pid when it runs
  local pid
  [[ -f $KAFKA_PIDFILE ]] || return 1
  pid=$(cat "$KAFKA_PIDFILE" 2>/dev/null) || return 1
  is_our_kafka "$pid" || return 1
  printf '%s' "$pid"
}

KAFKA_LOG_START=0  # server.log line count when this start began

kafka_log_tail() {
  local n=${1:-40} total=0
  [[ -f "$KAFKA_LOGS/server.log" ]] && total=$(wc -l <"$KAFKA_LOGS/server.log")
  if ((total > KAFKA_LOG_START)); then
    say "---- last $n lines of $KAFKA_LOGS/server.log ----"
    tail -n +"$((KAFKA_LOG_START + 1))" "$KAFKA_LOGS/server.log" | tail -n "$n"
  else
    say "---- $KAFKA_LOGS/server.log: nothing logged by this start ----"
  fi
  if [[ -s "$KAFKA_LOGS/kafka.out" ]]; then
    say "---- last 15 lines of $KAFKA_LOGS/kafka.out (stdout/stderr) ----"
    tail -n 15 "$KAFKA_LOGS/kafka.out"
  fi
}

kafka_metadata_ok() {
  local auth=()
  [[ $KAFKA_SECURITY == sasl ]] && auth=(--command-config "$KAFKA_ADMIN_PROPS")
  timeout 30 java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" \
    -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$HOST:$KAFKA_PORT" "${auth[@]}" --list >/dev/null 2>&1
}

kafka_up() {
  need_java
  kafka_check_security
  local pid owners p
  if pid=$(kafka_pid); then
    say "kafka: already running (pid $pid, $HOST:$KAFKA_PORT, rss $(rss_mib "$pid") MiB)"
    return 0
  fi
  rm -f "$KAFKA_PIDFILE"
  local ports=("$KAFKA_PORT" "$KAFKA_CPORT")
  [[ $KAFKA_SECURITY == sasl ]] && ports+=("$KAFKA_SSL_PORT")
  for p in "${ports[@]}"; do
    if owners=$(port_listeners "$p"); then
      for pid in $owners; do
        if is_our_kafka "$pid"; then  # our broker, pid file lost: adopt it
          printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
          say "kafka: already running (pid $pid, pid file restored)"
          return 0
        fi
      done
      {
        say "stack.sh: error: port $HOST:$p is already in use by something that is not billy's broker:"
        describe_pids "$owners"
        say "Stop it, or pick other ports: BILLY_KAFKA_PORT / BILLY_KAFKA_CONTROLLER_PORT."
      } >&2
      exit 1
    fi
  done

  kafka_fetch
  if [[ $KAFKA_SECURITY == sasl ]]; then
    kafka_tls_once
    kafka_admin_props
  fi
  kafka_write_props
  kafka_format_once
  [[ $KAFKA_SECURITY == sasl ]] && kafka_check_scram

  local t0=$SECONDS
  mkdir -p "$KAFKA_LOGS"
  [[ -f "$KAFKA_LOGS/server.log" ]] && KAFKA_LOG_START=$(wc -l <"$KAFKA_LOGS/server.log")
  printf '==== %s starting kafka.Kafka\n' "$(date -Is)" >>"$KAFKA_LOGS/kafka.out"
  # shellcheck disable=SC2086  # KAFKA_HEAP and KAFKA_GC are lists of JVM flags
  nohup setsid java $KAFKA_HEAP $KAFKA_GC $KAFKA_METASPACE \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    >>"$KAFKA_LOGS/kafka.out" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
  say "kafka: starting $(kafka_version) (pid $pid) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CPORT ..."

  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) stage=port
  while :; do
    if ! is_our_kafka "$pid"; then
      wait "$pid" 2>/dev/null || true
      rm -f "$KAFKA_PIDFILE"
      kafka_log_tail 40 >&2
      die "the Kafka broker exited during start-up (log above; full logs in $KAFKA_LOGS)"
    fi
    if [[ $stage == port ]] && port_accepts "$KAFKA_PORT"; then
      stage=metadata
    fi
    if [[ $stage == metadata ]] && kafka_metadata_ok; then
      break
    fi
    if ((SECONDS >= deadline)); then
      kafka_log_tail 40 >&2
      die "the Kafka broker (pid $pid) was not ready within ${KAFKA_READY_TIMEOUT}s (stuck at: $stage); it is left running: deploy/stack.sh kafka-down stops it"
    fi
    sleep 0.5
  done
  [[ $KAFKA_SECURITY == sasl ]] && kafka_local_acls_once
  say "kafka: ready in $((SECONDS - t0)) s (pid $pid, rss $(rss_mib "$pid") MiB, security $KAFKA_SECURITY)"
}

kafka_wait_gone() {  # pid, seconds; exit 0 when gone
  local pid=$1 end=$((SECONDS + $2))
  while is_our_kafka "$pid"; do
    ((SECONDS >= end)) && return 1
    sleep 0.2
  done
}

kafka_down() {
  local pid t0=$SECONDS
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_PIDFILE"
    say "kafka: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! kafka_wait_gone "$pid" "$KAFKA_STOP_TIMEOUT"; then
    say "kafka: no exit ${KAFKA_STOP_TIMEOUT}s after SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    kafka_wait_gone "$pid" 10 || die "kafka: pid $pid survived SIGKILL"
  fi
  rm -f "$KAFKA_PIDFILE"
  say "kafka: stopped (pid $pid, $((SECONDS - t0)) s)"
}

kafka_kill() {
  local pid
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_PIDFILE"
    say "kafka: not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  kafka_wait_gone "$pid" 10 || die "kafka: pid $pid survived SIGKILL"
  rm -f "$KAFKA_PIDFILE"
  say "kafka: killed with SIGKILL (pid $pid)"
}

kafka_status() {
  local pid
  if pid=$(kafka_pid); then
    local ready=no
    port_accepts "$KAFKA_PORT" && ready=yes
    say "kafka:    running  pid $pid  port $HOST:$KAFKA_PORT (controller $KAFKA_CPORT)  accepting=$ready  rss $(rss_mib "$pid") MiB  version $(kafka_version)"
  else
    say "kafka:    stopped  pid -  port $HOST:$KAFKA_PORT (controller $KAFKA_CPORT)"
  fi
}

# =====================================================================================
# PostgreSQL
# =====================================================================================

PGBIN=""

pg_find_bin() {  # newest Debian server install, or the one matching an existing data dir
  local want="" d
  [[ -f "$PG_DATA/PG_VERSION" ]] && want=$(cat "$PG_DATA/PG_VERSION")
  if [[ -n $want ]]; then
    d="/usr/lib/postgresql/$want/bin"
    [[ -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]] && { printf '%s' "$d"; return 0; }
    return 1
  fi
  for d in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r); do
    [[ -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]] && { printf '%s' "$d"; return 0; }
  done
  return 1
}

pg_need_bin() {
  PGBIN=$(pg_find_bin) && return 0
  if [[ -f "$PG_DATA/PG_VERSION" ]] && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    die "$PG_DATA is a PostgreSQL $(cat "$PG_DATA/PG_VERSION") cluster but that server version is not installed; reset it: deploy/stack.sh pg-down; rm -rf .state/pg"
  fi
  ((EUID == 0)) || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install them (sudo apt-get install -y postgresql)"
  command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server binaries and no apt-get to install them"
  mkdir -p "$PG_DIR"
  say "postgres: no server binaries found; installing the Debian package 'postgresql' (log: $PG_DIR/apt.log) ..."
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } >"$PG_DIR/apt.log" 2>&1; then
    tail -n 20 "$PG_DIR/apt.log" >&2
    die "apt-get install postgresql failed (see $PG_DIR/apt.log)"
  fi
  PGBIN=$(pg_find_bin) || die "apt-get installed postgresql but no server binaries appeared in /usr/lib/postgresql/*/bin"
}

# Postgres refuses to run as root: as root, the server runs as the Debian package's
# `postgres` system user, which must own .state/pg and be able to reach it.
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

pg_prepare_dirs() {
  mkdir -p "$PG_DIR" "$PG_RUN" "$PG_LOGS"
  ((EUID == 0)) || return 0
  id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' system user (apt-get install -y postgresql creates it)"
  # Every ancestor of .state/pg must be searchable by postgres (o+x only, no read).
  local p path=""
  local -a parts
  IFS=/ read -r -a parts <<<"${PG_DIR#/}"
  for p in "${parts[@]}"; do
    path="$path/$p"
    [[ $path == "$PG_DIR" ]] && break
    if ! runuser -u postgres -- test -x "$path"; then
      chmod o+x "$path"
      say "postgres: chmod o+x $path (so the postgres user can reach .state/pg)"
    fi
  done
  chown postgres:postgres "$PG_DIR" "$PG_RUN" "$PG_LOGS"
  [[ -d $PG_DATA ]] && chown postgres:postgres "$PG_DATA"
  return 0
}

pg_socket_check() {
  local sock="$PG_RUN/.s.PGSQL.$PG_PORT"
  ((${#sock} <= 100)) || die "the unix socket path $sock is too long for Linux (max ~107 bytes): move the repo to a shorter path"
}

pg_pid() {  # prints the postmaster pid of OUR cluster when it runs
  local pid
  [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
  pid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  local c
  c=$(cmdline "$pid")
  [[ $c == *postgres* && $c == *"$PG_DATA"* ]] || return 1
  printf '%s' "$pid"
}

pg_write_conf() {
  cat >"$PG_DATA/billy.conf" <<EOF
# Written by deploy/stack.sh on every start (included from postgresql.conf); edit the
# script, not this file.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 200
shared_buffers = 256MB

# Durable, always: billy's benchmarks must measure durable commits.
fsync = on
synchronous_commit = on
full_page_writes = on

# WAL and checkpoints for a write-heavy benchmark box: few, spread-out checkpoints.
wal_level = replica
wal_buffers = 16MB
max_wal_size = 4GB
min_wal_size = 512MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9

# Planner / memory for a 2-core, 24 GiB machine shared with Kafka and billy.
effective_cache_size = 4GB
work_mem = 8MB
maintenance_work_mem = 256MB
random_page_cost = 1.1

logging_collector = off
log_checkpoints = on
log_lock_waits = on
log_line_prefix = '%m [%p] %q%u@%d '
timezone = 'UTC'
log_timezone = 'UTC'
EOF
  # Local development only: trust authentication on the private unix socket and on
  # 127.0.0.1 (any local user may connect as any role without a password). The server
  # listens on 127.0.0.1 only. Never copy this to anything reachable from outside.
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# Written by deploy/stack.sh. Local development only: trust on the private unix
# socket and on 127.0.0.1; the server listens on 127.0.0.1 only.
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
  ((EUID == 0)) && chown postgres:postgres "$PG_DATA/billy.conf" "$PG_DATA/pg_hba.conf"
  grep -q "^include_if_exists 'billy.conf'" "$PG_DATA/postgresql.conf" ||
    printf "\n# billy's local settings (deploy/stack.sh)\ninclude_if_exists 'billy.conf'\n" >>"$PG_DATA/postgresql.conf"
}

pg_initdb_once() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  if [[ -d $PG_DATA ]] && [[ -n "$(ls -A "$PG_DATA")" ]]; then
    die "$PG_DATA exists but is not a PostgreSQL cluster: remove it (rm -rf .state/pg) and retry"
  fi
  mkdir -p "$PG_DATA"
  ((EUID == 0)) && chown postgres:postgres "$PG_DATA"
  chmod 700 "$PG_DATA"
  say "postgres: initdb $PG_DATA (superuser $PG_ROLE, $("$PGBIN/postgres" --version))"
  if ! as_pg "$PGBIN/initdb" -D "$PG_DATA" -U "$PG_ROLE" --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_LOGS/initdb.log" 2>&1; then
    tail -n 20 "$PG_LOGS/initdb.log" >&2
    die "initdb failed (see $PG_LOGS/initdb.log)"
  fi
}

pg_psql() {  # as the billy superuser over our unix socket
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U "$PG_ROLE" "$@"
}

pg_check_external() {
  local psql pgready
  psql=$(command -v psql || true)
  pgready=$(command -v pg_isready || true)
  if [[ -z $psql && -z $pgready ]] && ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
    say "postgres: installing postgresql-client to check BILLY_DATABASE_URL ..."
    { DEBIAN_FRONTEND=noninteractive apt-get update &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-client; } >/dev/null 2>&1 || true
    psql=$(command -v psql || true)
  fi
  if [[ -n $psql ]]; then
    local out
    out=$("$psql" -X -q -At -d "$PG_EXTERNAL_URL" -c 'select 1' 2>&1) ||
      die "BILLY_DATABASE_URL is set but the database does not answer to psql -c 'select 1': $out"
  elif [[ -n $pgready ]]; then
    "$pgready" -q -d "$PG_EXTERNAL_URL" || die "BILLY_DATABASE_URL is set but pg_isready says the server does not answer"
  else
    die "BILLY_DATABASE_URL is set but neither psql nor pg_isready is installed to check it"
  fi
}

pg_up() {
  if [[ -n $PG_EXTERNAL_URL ]]; then
    pg_check_external
    say "postgres: using BILLY_DATABASE_URL (external; nothing started)"
    return 0
  fi
  pg_need_bin
  pg_socket_check
  local pid owners
  if pid=$(pg_pid); then
    say "postgres: already running (pid $pid, $HOST:$PG_PORT)"
    return 0
  fi
  if owners=$(port_listeners "$PG_PORT"); then
    {
      say "stack.sh: error: port $HOST:$PG_PORT is already in use by something that is not billy's cluster:"
      describe_pids "$owners"
      say "Stop it, pick another port with BILLY_PG_PORT, or point BILLY_DATABASE_URL at an existing database."
    } >&2
    exit 1
  fi
  pg_prepare_dirs
  pg_initdb_once
  pg_write_conf
  local t0=$SECONDS
  if ! as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOGS/postgres.log" -w -t 120 start >/dev/null 9>&-; then
    say "---- last 40 lines of $PG_LOGS/postgres.log ----" >&2
    tail -n 40 "$PG_LOGS/postgres.log" >&2 || true
    die "PostgreSQL did not start (see $PG_LOGS/postgres.log)"
  fi
  if [[ -z "$(pg_psql -d postgres -At -c "select 1 from pg_database where datname = '$PG_DB'")" ]]; then
    pg_psql -d postgres -c "create database $PG_DB owner $PG_ROLE"
    say "postgres: created database $PG_DB"
  fi
  pid=$(pg_pid) || true
  say "postgres: ready in $((SECONDS - t0)) s (pid ${pid:-?}, $HOST:$PG_PORT, PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }'))"
}

pg_stop() {  # mode
  if [[ -n $PG_EXTERNAL_URL ]]; then
    say "postgres: BILLY_DATABASE_URL is set (external database): nothing to stop"
    return 0
  fi
  local pid
  if ! pid=$(pg_pid); then
    say "postgres: not running"
    return 0
  fi
  pg_need_bin
  local t0=$SECONDS
  as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m "$1" -w -t 120 stop >/dev/null
  if [[ $1 == immediate ]]; then
    say "postgres: stopped with -m immediate (pid $pid; crash recovery on next start)"
  else
    say "postgres: stopped (pid $pid, $((SECONDS - t0)) s)"
  fi
}

pg_status() {
  if [[ -n $PG_EXTERNAL_URL ]]; then
    say "postgres: external  BILLY_DATABASE_URL=$PG_EXTERNAL_URL"
    return 0
  fi
  local pid
  if pid=$(pg_pid); then
    say "postgres: running  pid $pid  port $HOST:$PG_PORT  rss $(rss_mib "$pid") MiB (postmaster)  data .state/pg/data"
  else
    say "postgres: stopped  pid -  port $HOST:$PG_PORT"
  fi
}

# =====================================================================================
# Balance emulator (balance_emulator/, standard library only: no venv needed)
# =====================================================================================

# The interpreter's real path: a wrapper such as a pyenv shim may start Python as another
# process, and the pid file must hold the emulator's own pid.
balance_python() {
  command -v "$BALANCE_PYTHON" >/dev/null 2>&1 ||
    die "$BALANCE_PYTHON not found on PATH: the Balance emulator needs Python >= 3.11 (or set BILLY_BALANCE_PYTHON)"
  local exe
  exe=$("$BALANCE_PYTHON" -c 'import sys; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null) ||
    die "$BALANCE_PYTHON does not run, or is older than Python 3.11 (set BILLY_BALANCE_PYTHON)"
  printf '%s' "$exe"
}

# The shared secret of the emulator's notification signatures: made once (random), kept
# in .state/balance/notify.secret (mode 600), never printed.
balance_secret() {
  if [[ ! -s $BALANCE_SECRET_FILE ]]; then
    mkdir -p "$BALANCE_DIR"
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$BALANCE_SECRET_FILE.tmp")
    mv "$BALANCE_SECRET_FILE.tmp" "$BALANCE_SECRET_FILE"
  fi
  cat "$BALANCE_SECRET_FILE"
}

is_our_balance() {  # pid $1 is an emulator started on our state file
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  local c
  c=$(cmdline "$1")
  [[ $c == *"-m balance_emulator"* && $c == *"--state $BALANCE_DB"* ]]
}

balance_pid() {
  local pid
  pid=$(cat "$BALANCE_PIDFILE" 2>/dev/null) || return 1
  is_our_balance "$pid" || return 1
  printf '%s' "$pid"
}

balance_healthy() {  # GET /health answers 200
  # shellcheck disable=SC2016  # expanded by the inner bash, from its arguments $0 and $1
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
    IFS= read -r line <&3 && [[ $line == *" 200 "* ]]' "$HOST" "$BALANCE_PORT" 2>/dev/null
}

balance_up() {
  local pid owners python secret
  if pid=$(balance_pid); then
    say "balance:  already running (pid $pid, http://$HOST:$BALANCE_PORT/xmlrpc)"
    return 0
  fi
  rm -f "$BALANCE_PIDFILE"
  if owners=$(port_listeners "$BALANCE_PORT"); then
    for pid in $owners; do
      if is_our_balance "$pid"; then  # our emulator, pid file lost: adopt it
        printf '%s\n' "$pid" >"$BALANCE_PIDFILE"
        say "balance:  already running (pid $pid, pid file restored)"
        return 0
      fi
    done
    {
      say "stack.sh: error: port $HOST:$BALANCE_PORT is already in use by something that is not billy's Balance emulator:"
      describe_pids "$owners"
      say "Stop it, or pick another port with BILLY_BALANCE_PORT."
    } >&2
    exit 1
  fi
  python=$(balance_python)
  secret=$(balance_secret)
  mkdir -p "$BALANCE_DIR"
  printf '==== %s starting balance_emulator\n' "$(date -Is)" >>"$BALANCE_LOG"
  # One simple command, so the background child execs the emulator itself ($! is its pid)
  # and nothing else keeps the lock's fd 9. The secret goes through the environment: a
  # command line is visible to every local user.
  PYTHONPATH="$ROOT" BALANCE_NOTIFY_SECRET="$secret" \
    nohup setsid "$python" -m balance_emulator --host "$HOST" --port "$BALANCE_PORT" \
    --state "$BALANCE_DB" --notify-url "$BALANCE_NOTIFY_URL" --notify-form "$BALANCE_NOTIFY_FORM" \
    >>"$BALANCE_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$BALANCE_PIDFILE"
  local t0=$SECONDS deadline=$((SECONDS + BALANCE_READY_TIMEOUT))
  until balance_healthy; do
    if ! is_our_balance "$pid"; then
      rm -f "$BALANCE_PIDFILE"
      tail -n 20 "$BALANCE_LOG" >&2
      die "the Balance emulator exited during start-up (log above; full log $BALANCE_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$BALANCE_LOG" >&2
      die "the Balance emulator (pid $pid) did not answer within ${BALANCE_READY_TIMEOUT}s; it is left running: deploy/stack.sh emulator-down stops it"
    fi
    sleep 0.2
  done
  say "balance:  ready in $((SECONDS - t0)) s (pid $pid, http://$HOST:$BALANCE_PORT/xmlrpc, notifications to $BALANCE_NOTIFY_URL as $BALANCE_NOTIFY_FORM)"
}

balance_wait_gone() {  # pid, seconds; exit 0 when gone
  local pid=$1 end=$((SECONDS + $2))
  while is_our_balance "$pid"; do
    ((SECONDS >= end)) && return 1
    sleep 0.1
  done
}

balance_down() {  # signal: TERM (stop) or KILL
  local pid
  if ! pid=$(balance_pid); then
    rm -f "$BALANCE_PIDFILE"
    say "balance:  not running"
    return 0
  fi
  kill "-$1" "$pid" 2>/dev/null || true
  if ! balance_wait_gone "$pid" "$BALANCE_STOP_TIMEOUT"; then
    say "balance:  no exit ${BALANCE_STOP_TIMEOUT}s after SIG$1, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    balance_wait_gone "$pid" 5 || die "balance: pid $pid survived SIGKILL"
  fi
  rm -f "$BALANCE_PIDFILE"
  say "balance:  stopped with SIG$1 (pid $pid; state kept in .state/balance/emulator.sqlite3)"
}

balance_status() {
  local pid
  if pid=$(balance_pid); then
    local ready=no
    balance_healthy && ready=yes
    say "balance:  running  pid $pid  url http://$HOST:$BALANCE_PORT/xmlrpc  healthy=$ready  rss $(rss_mib "$pid") MiB  notify $BALANCE_NOTIFY_URL ($BALANCE_NOTIFY_FORM)"
  else
    say "balance:  stopped  pid -  url http://$HOST:$BALANCE_PORT/xmlrpc"
  fi
}

# =====================================================================================
# env file and entry points
# =====================================================================================

env_value() {  # shell-quote only when needed, so the file stays KEY=value for simple values
  if [[ $1 =~ ^[A-Za-z0-9@:/._%+=,-]*$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

env_lines() {
  local url="${PG_EXTERNAL_URL:-postgresql://$PG_ROLE@$HOST:$PG_PORT/$PG_DB}"
  printf 'BILLY_KAFKA_BOOTSTRAP=%s\n' "$(env_value "$HOST:$KAFKA_PORT")"
  printf 'BILLY_DATABASE_URL=%s\n' "$(env_value "$url")"
  printf 'BILLY_BALANCE_URL=%s\n' "$(env_value "http://$HOST:$BALANCE_PORT/xmlrpc")"
  printf 'BILLY_BALANCE_NOTIFY_URL=%s\n' "$(env_value "$BALANCE_NOTIFY_URL")"
  [[ $KAFKA_SECURITY == sasl ]] || return 0
  printf 'BILLY_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n'
  printf 'BILLY_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n'
  printf 'BILLY_KAFKA_SASL_USERNAME=%s\n' "$KAFKA_LOCAL_USER"
  printf 'BILLY_KAFKA_SSL_CA_LOCATION=%s\n' "$(env_value "$KAFKA_TLS/ca.pem")"
  printf 'BILLY_KAFKA_SSL_BOOTSTRAP=%s\n' "$(env_value "$HOST:$KAFKA_SSL_PORT")"
}

# The super user's credentials for `billy tenants` / `billy security` (read by Settings as
# BILLY_KAFKA_ADMIN_SASL_*; the roles never use them). Mode 600, never printed.
write_admin_env() {
  [[ $KAFKA_SECURITY == sasl ]] || { rm -f "$KAFKA_SECRETS/admin.env"; return 0; }
  local pw
  pw=$(kafka_secret "$KAFKA_ADMIN_USER")
  (
    umask 077
    {
      printf '# Written by deploy/stack.sh up: the Kafka super user, for billy tenants/security.\n'
      printf 'BILLY_KAFKA_ADMIN_SASL_USERNAME=%s\n' "$KAFKA_ADMIN_USER"
      printf 'BILLY_KAFKA_ADMIN_SASL_PASSWORD=%s\n' "$pw"
    } >"$KAFKA_SECRETS/admin.env.tmp"
  )
  mv "$KAFKA_SECRETS/admin.env.tmp" "$KAFKA_SECRETS/admin.env"
}

write_env() {
  mkdir -p "$STATE"
  local secret
  secret=$(balance_secret)
  # Mode 600: the file carries the Balance notification secret.
  (
    umask 077
    {
      printf '# Written by deploy/stack.sh up. Use: set -a; . .state/stack.env; set +a\n'
      env_lines
      printf 'BILLY_BALANCE_NOTIFY_SECRET=%s\n' "$(env_value "$secret")"
      if [[ $KAFKA_SECURITY == sasl ]]; then
        printf 'BILLY_KAFKA_SASL_PASSWORD=%s\n' "$(kafka_secret "$KAFKA_LOCAL_USER")"
      fi
    } >"$STACK_ENV.tmp"
  )
  mv "$STACK_ENV.tmp" "$STACK_ENV"
  write_admin_env
  say "env: $STACK_ENV"
  sed 's/^/  /' <(env_lines)
  say "  BILLY_BALANCE_NOTIFY_SECRET=(in the file only; kept in .state/balance/notify.secret)"
  if [[ $KAFKA_SECURITY == sasl ]]; then
    say "  BILLY_KAFKA_SASL_PASSWORD=(in the file only; kept in .state/kafka/secrets/)"
    say "  the Kafka super user's credentials: $KAFKA_SECRETS/admin.env (for billy tenants / billy security)"
  fi
}

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    up) take_lock; reserve_ports; kafka_check_security; kafka_default_mode; kafka_running_mode; pg_up; kafka_up; balance_up; write_env ;;
    down) take_lock; balance_down TERM; kafka_down; pg_stop fast ;;
    status) kafka_status; pg_status; balance_status ;;
    env) kafka_check_security; kafka_default_mode; kafka_running_mode; env_lines ;;
    kafka-up) take_lock; reserve_ports; kafka_check_security; kafka_default_mode; kafka_running_mode; kafka_up ;;
    kafka-down) take_lock; kafka_down ;;
    kafka-kill) take_lock; kafka_kill ;;
    pg-up) take_lock; reserve_ports; pg_up ;;
    pg-down) take_lock; pg_stop fast ;;
    pg-kill) take_lock; pg_stop immediate ;;
    emulator-up) take_lock; kafka_default_mode; kafka_running_mode; balance_up; write_env ;;
    emulator-down) take_lock; balance_down TERM ;;
    emulator-kill) take_lock; balance_down KILL ;;
    kafka-tool)
      [[ $# -ge 1 ]] || die "usage: deploy/stack.sh kafka-tool <main class> [args...]"
      need_java
      [[ -f $KAFKA_MARKER ]] || die "no Kafka jars yet: run deploy/stack.sh kafka-up first"
      kafka_java "$@"
      ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
