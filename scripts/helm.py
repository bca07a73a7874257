"""helm's command line, the subset smo uses, over Helm v4's own Go engine (helm-sdkpy).

Rendering, OCI pulls and pushes, release storage and object creation are all Helm's: this file only
maps arguments and exits as helm does (0, or 1 with `Error: …` on stderr).

    helm version [--short]
    helm upgrade --install REL CHART [-n NS] [--create-namespace] [--kubeconfig F] [-f F]... [--set K=V]...
         [--plain-http] [--timeout D] [--wait] [--version V]
    helm uninstall REL [-n NS] [--kubeconfig F] [--wait] [--timeout D]
    helm list [-n NS | -A] [--kubeconfig F] [-o json]
    helm status REL [-n NS] [--kubeconfig F] [-o json]
    helm package DIR [-d DEST]
    helm push TGZ oci://HOST/PATH [--plain-http]
    helm registry login HOST -u USER -p PASS [--plain-http] [--insecure]
"""

import argparse
import asyncio
import json
import re
import sys

import helm_sdkpy as helm


def fail(message):
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(1)


def duration(text):
    """helm's durations: 300s, 5m, 1m30s, 2h."""
    if text is None:
        return 300
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        fail(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return max(1, int(sum(float(n) * scale[u] for n, u in parts)))


def values_of(files):
    merged = {}
    for path in files or []:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            import yaml  # shipped with the venv (schemathesis depends on it)

            doc = yaml.safe_load(text) or {}
        if not isinstance(doc, dict):
            fail(f"values file {path} is not a map")
        merge(merged, doc)
    return merged


def scalar(text):
    """helm --set's typing: integers, booleans and null are typed, anything else is a string."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "null": None}.get(text, text)


def set_values(into, expressions):
    """`--set a.b=1,c=x` (no list indexes or escaped commas: smo never needs them)."""
    for expression in expressions or []:
        for pair in expression.split(","):
            key, sep, value = pair.partition("=")
            if not sep:
                fail(f'failed parsing --set data: key "{pair}" has no value')
            node = into
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = scalar(value)
    return into


def merge(into, other):
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


def semver_key(tag):
    """Sort key of a chart tag (OCI tags write semver's '+' as '_'); None when not semver."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:[_+][0-9A-Za-z.-]+)?", tag)
    if not m:
        return None
    major, minor, patch, pre = m.groups()
    # A release sorts after its pre-releases.
    return (int(major), int(minor), int(patch), pre is None, pre or "")


def newest_tag(chart, plain_http):
    """What the helm CLI does for an oci:// chart given without a version: the registry's newest
    semver tag (helm-sdkpy pulls exact tags only)."""
    import urllib.request

    host, _, repo = chart[len("oci://"):].partition("/")
    scheme = "http" if plain_http else "https"
    try:
        with urllib.request.urlopen(f"{scheme}://{host}/v2/{repo}/tags/list", timeout=30) as r:
            tags = json.load(r).get("tags") or []
    except Exception as e:  # noqa: BLE001 - helm reports any registry failure the same way
        fail(f"failed to list the tags of {chart}: {e}")
    # Like helm without --devel: releases only, pre-releases are never picked by default.
    ranked = [(semver_key(t), t) for t in tags if semver_key(t) is not None and semver_key(t)[3]]
    if not ranked:
        fail(f"unable to locate any tags in provided repository: {chart}")
    return max(ranked)[1].replace("_", "+")


def config(a, plain_http=False):
    return helm.Configuration(
        namespace=getattr(a, "namespace", None) or "default",
        kubeconfig=getattr(a, "kubeconfig", None),
        plain_http=plain_http,
    )


async def upgrade(a):
    if not a.install:
        fail("smo's helm shim runs `upgrade` with --install only")
    cfg = config(a, a.plain_http)
    version = a.version
    last = a.chart.rsplit("/", 1)[-1]
    if a.chart.startswith("oci://") and not version and ":" not in last and "@" not in last:
        version = newest_tag(a.chart, a.plain_http)
    try:
        r = await helm.Upgrade(cfg).run(
            a.release,
            a.chart,
            values=set_values(values_of(a.values), a.set),
            version=version,
            install=True,
            create_namespace=a.create_namespace,
            wait=a.wait,
            timeout=duration(a.timeout),
            # helm validates rendered manifests against the server's OpenAPI by default.
            disable_openapi_validation=a.disable_openapi_validation,
        )
    except helm.HelmError as e:
        fail(f"UPGRADE FAILED: {e}")
    print(f'Release "{a.release}" has been upgraded. Happy Helming!')
    print(f"NAME: {a.release}")
    print(f"NAMESPACE: {r.get('namespace', a.namespace)}")
    print(f"STATUS: {r.get('info', {}).get('status', 'deployed')}")
    print(f"REVISION: {r.get('version', '')}")


async def uninstall(a):
    try:
        await helm.Uninstall(config(a)).run(a.release, wait=a.wait, timeout=duration(a.timeout))
    except helm.HelmError as e:
        text = str(e)
        if "not found" in text:
            fail(f"uninstall: Release not loaded: {a.release}: release: not found")
        fail(f"uninstall: {text}")
    print(f'release "{a.release}" uninstalled')


def release_row(r):
    info = r.get("info", {})
    chart = r.get("chart", {}).get("metadata", {})
    return {
        "name": r.get("name"),
        "namespace": r.get("namespace"),
        "revision": str(r.get("version")),
        "updated": info.get("last_deployed"),
        "status": info.get("status"),
        "chart": f"{chart.get('name')}-{chart.get('version')}",
        "app_version": chart.get("appVersion", ""),
    }


async def list_releases(a):
    try:
        rows = await helm.List(config(a)).run(all=True) or []
    except helm.HelmError as e:
        fail(f"list: {e}")
    rows = [release_row(r) for r in rows]
    if not a.all_namespaces:
        rows = [r for r in rows if r["namespace"] == (a.namespace or "default")]
    if a.output == "json":
        print(json.dumps(rows))
    else:
        print("NAME\tNAMESPACE\tREVISION\tSTATUS\tCHART")
        for r in rows:
            print(f"{r['name']}\t{r['namespace']}\t{r['revision']}\t{r['status']}\t{r['chart']}")


async def status(a):
    try:
        r = await helm.Status(config(a)).run(a.release)
    except helm.HelmError as e:
        fail(f"{e}")
    if a.output == "json":
        print(json.dumps(r))
    else:
        row = release_row(r)
        print(f"NAME: {row['name']}\nNAMESPACE: {row['namespace']}\nSTATUS: {row['status']}\nREVISION: {row['revision']}")


async def package(a):
    try:
        path = await helm.Package(config(a)).run(a.chart, dest_dir=a.destination)
    except helm.HelmError as e:
        fail(f"{e}")
    print(f"Successfully packaged chart and saved it to: {path}")


async def push(a):
    try:
        await helm.Push(config(a, a.plain_http)).run(a.chart, a.remote, plain_http=a.plain_http)
    except helm.HelmError as e:
        fail(f"{e}")
    print(f"Pushed: {a.remote}")


async def registry_login(a):
    try:
        await helm.RegistryLogin(config(a, a.plain_http)).run(
            a.host, a.username, a.password, insecure=a.insecure, plain_http=a.plain_http
        )
    except helm.HelmError as e:
        fail(f"{e}")
    print("Login Succeeded")


def parser():
    p = argparse.ArgumentParser(prog="helm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("-n", "--namespace", default=None)
        sp.add_argument("--kubeconfig", default=None)

    v = sub.add_parser("version")
    v.add_argument("--short", action="store_true")

    u = sub.add_parser("upgrade")
    common(u)
    u.add_argument("release")
    u.add_argument("chart")
    u.add_argument("-i", "--install", action="store_true")
    u.add_argument("--create-namespace", action="store_true")
    u.add_argument("-f", "--values", action="append")
    u.add_argument("--set", action="append")
    u.add_argument("--plain-http", action="store_true")
    u.add_argument("--timeout")
    u.add_argument("--wait", action="store_true")
    u.add_argument("--version")
    u.add_argument("--disable-openapi-validation", action="store_true")

    d = sub.add_parser("uninstall")
    common(d)
    d.add_argument("release")
    d.add_argument("--wait", action="store_true")
    d.add_argument("--timeout")

    ls = sub.add_parser("list")
    common(ls)
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    ls.add_argument("-o", "--output", default="table")

    st = sub.add_parser("status")
    common(st)
    st.add_argument("release")
    st.add_argument("-o", "--output", default="table")

    pk = sub.add_parser("package")
    pk.add_argument("chart")
    pk.add_argument("-d", "--destination", default=".")

    ps = sub.add_parser("push")
    ps.add_argument("chart")
    ps.add_argument("remote")
    ps.add_argument("--plain-http", action="store_true")

    rg = sub.add_parser("registry")
    rsub = rg.add_subparsers(dest="registry_command", required=True)
    rl = rsub.add_parser("login")
    rl.add_argument("host")
    rl.add_argument("-u", "--username", required=True)
    rl.add_argument("-p", "--password", required=True)
    rl.add_argument("--insecure", action="store_true")
    rl.add_argument("--plain-http", action="store_true")
    return p


def main():
    a = parser().parse_args()
    if a.command == "version":
        version = helm.get_version()
        print(version if a.short else f'version.BuildInfo{{Version:"{version}", engine:"helm-sdkpy"}}')
        return
    run = {
        "upgrade": upgrade,
        "uninstall": uninstall,
        "list": list_releases,
        "status": status,
        "package": package,
        "push": push,
    }.get(a.command)
    if a.command == "registry":
        run = registry_login
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
