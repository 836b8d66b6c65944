#!/usr/bin/env python3
"""Generate a large SuperCP repo for the benchmark (scripts/bench.sh).

Usage: scripts/gen-repo.py OUT_DIR [--tenants N] [--seed S]

Lays the repo out as a hosting company would: one Package file, then one file per tenant
(its Tenant and its two Domains, as `---`-separated documents) under a folder per customer
group (`customers/<letter>/`, a couple of thousand files each at 10,000 tenants).

The mix is deterministic (seeded) and roughly that of a shared host:
  - ~65 % of tenants have a PHP pool (varied maxChildren / memoryLimit / limits)
  - each tenant has 2 domains: the main site and a second one (shop., blog. or an own name)
  - ~55 % of domains have a www. alias (a few have two aliases)
  - ~12 % have path redirects, ~3 % redirect the whole site (redirectTo), a few have a
    documentRoot, ~2 % of tenants are suspended
Names match the validator's grammar: tenants `[a-z][a-z0-9-]{0,30}`, domains `*.test`.
"""

import argparse
import os
import random
import sys

SYLLABLES = [
    "ac", "me", "glo", "bex", "ini", "tech", "sol", "ar", "ve", "ra", "no", "va", "ly", "ka",
    "zen", "tri", "mo", "pix", "el", "on", "da", "ta", "web", "net", "fo", "rum", "bi", "zo",
]
MEMORY = ["128M", "256M", "384M", "512M"]
SECOND = ["shop", "blog", "mail-web", "docs", "app", "news"]


def tenant_name(rng, i):
    # A pronounceable stem plus the index keeps names unique and within 31 characters.
    stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
    return f"{stem}-{i:05d}"


def domain_doc(lines, name, tenant, rng, php):
    lines += ["---", "apiVersion: supercp/v1", "kind: Domain", f"metadata: {{name: {name}}}",
              "spec:", f"  tenant: {tenant}"]
    r = rng.random()
    if r < 0.50:
        lines.append(f"  aliases: [www.{name}]")
    elif r < 0.55:
        lines.append(f"  aliases: [www.{name}, old.{name}]")
    if php:
        lines.append("  php: true")
    if rng.random() < 0.05:
        lines.append("  documentRoot: public_html/web")
    r = rng.random()
    if r < 0.03:
        lines.append(f"  redirectTo: https://www.{name}/")
    elif r < 0.15:
        lines.append("  redirects:")
        lines.append("    - {from: /old, to: /new, code: 301}")
        if rng.random() < 0.4:
            lines.append(f"    - {{from: /promo, to: 'https://shop.{name}/sale', code: 302}}")


def tenant_file(rng, i):
    name = tenant_name(rng, i)
    php = rng.random() < 0.65
    lines = [f"# Customer #{i}",
             "apiVersion: supercp/v1", "kind: Tenant", f"metadata: {{name: {name}}}", "spec:",
             "  package: shared"]
    if php:
        children = rng.choice([2, 4, 4, 5, 8, 10])
        lines.append(f'  php: {{version: "8.2", maxChildren: {children}, '
                     f"memoryLimit: {rng.choice(MEMORY)}}}")
    if rng.random() < 0.02:
        lines.append("  suspended: true")
    main = f"{name}.test"
    domain_doc(lines, main, name, rng, php)
    r = rng.random()
    second = f"{rng.choice(SECOND)}.{main}" if r < 0.6 else f"{name}-online.test"
    domain_doc(lines, second, name, rng, php and rng.random() < 0.7)
    return name, "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "packages.yaml"), "w") as f:
        f.write("apiVersion: supercp/v1\nkind: Package\nmetadata: {name: shared}\n"
                "spec: {maxDomains: 20, maxPhpWorkers: 32, diskQuotaMb: 10240}\n")
    groups = "abcde"
    for i in range(args.tenants):
        name, text = tenant_file(rng, i)
        folder = os.path.join(args.out, "customers", groups[i % len(groups)])
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
            f.write(text)
    print(f"{args.tenants} tenants, {2 * args.tenants} domains in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
