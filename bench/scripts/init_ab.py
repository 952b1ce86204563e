#!/usr/bin/env python3
"""Interleaved A/B of cold-start init: exec -> the runtime's first connection to the Lambda Runtime API.

    bench/scripts/init_ab.py ROUNDS LABEL=BINARY[,ENV=VALUE...] [LABEL=BINARY...]

Every round starts each variant once, in turn, so load from other processes hits all of them alike (the
machine is shared). The "Runtime API" here is a bare listening socket: the time is taken when the
function's runtime connects to it (just before its first `GET /invocation/next`), then the process is
killed. The environment is Lambda's (as tests/src/runtime_api.rs sets it) plus dummy credentials, a
region, a table and a sender, plus the variant's own ENV=VALUE pairs. Prints a markdown table.
Standard library only; used for BENCHMARKS.md's cold-start investigation.
"""
import os
import socket
import statistics
import subprocess
import sys
import time


def variant(spec):
    label, rest = spec.split("=", 1)
    parts = rest.split(",")
    env = dict(p.split("=", 1) for p in parts[1:])
    return label, parts[0], env


def lambda_env(runtime_api, binary):
    """Lambda's environment for `binary` (as tests/src/runtime_api.rs sets it) with dummy credentials, a
    region, unreachable endpoints, a table and a sender; `runtime_api` is the Runtime API's host:port."""
    return {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_SESV2": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_SNS": "http://127.0.0.1:9",
        "DYNAMODB_TABLE": "bench",
        "SENDER_EMAIL": "alerts@bench.example",
        "DASHBOARD_URL": "https://dashboard.example/app",
        "TZ": ":UTC",
    }


def once(binary, extra):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    env = lambda_env("127.0.0.1:%d" % listener.getsockname()[1], binary)
    env.update(extra)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    listener.settimeout(20)
    conn, _ = listener.accept()
    took = time.perf_counter() - t0
    p.kill()
    p.wait()
    conn.close()
    listener.close()
    return took * 1000


def main():
    rounds = int(sys.argv[1])
    variants = [variant(s) for s in sys.argv[2:]]
    samples = {label: [] for label, _, _ in variants}
    for _ in range(rounds):
        for label, binary, env in variants:
            samples[label].append(once(binary, env))
    base = statistics.median(samples[variants[0][0]])
    print("| variant | median ms | p10 ms | p90 ms | min ms | median ÷ %s |" % variants[0][0])
    print("|---|---:|---:|---:|---:|---:|")
    for label, _, _ in variants:
        s = sorted(samples[label])
        q = lambda f: s[min(len(s) - 1, int(f * len(s)))]
        med = statistics.median(s)
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f× |" % (label, med, q(0.1), q(0.9), s[0], med / base))
    print()
    print("%d rounds; load average after: %s" % (rounds, open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
