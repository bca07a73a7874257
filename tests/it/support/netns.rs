//! Test hosts in network namespaces: a switch namespace with a bridge, one namespace per host
//! joined to it by a veth pair, and the test process itself (the root namespace) on the same
//! subnet. Links are cut and healed per destination with blackhole routes inside a host, so a
//! worker can lose PostgreSQL while it still reaches the federation (or the other way round).
//!
//! Only addresses of the subnet made here are used. Everything is removed on drop, processes
//! first.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Runs `ip` with `args`; panics with its message when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A set of test hosts on one private subnet.
pub struct Net {
    id: String,
    switch: String,
    subnet: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    root_link: String,
    /// Files of this network's hosts (PostgreSQL's data, kubeconfigs, homes).
    pub dir: PathBuf,
}

/// One host: its namespace and address.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub ns: String,
    pub ip: String,
}

impl Net {
    /// A new network, or `None` (after saying why) where namespaces cannot be made here.
    pub fn new() -> Option<Net> {
        let id = format!("{:04x}", rand::random::<u16>());
        let switch = format!("smo-{id}-sw");
        match Command::new("ip").args(["netns", "add", &switch]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                super::require(
                    &format!(
                        "network namespaces (ip netns add: {})",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    false,
                );
                return None;
            }
            Err(e) => {
                super::require(&format!("network namespaces (ip: {e})"), false);
                return None;
            }
        }
        // 10.200–249.x.0/24: private, and random so that parallel runs do not collide.
        let subnet = format!(
            "10.{}.{}",
            200 + rand::random::<u8>() % 50,
            rand::random::<u8>()
        );
        let dir = std::env::temp_dir().join(format!("smo-net-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let root_link = format!("s{id}r");
        let net = Net {
            id,
            switch: switch.clone(),
            subnet,
            namespaces: vec![switch.clone()],
            children: Vec::new(),
            root_link,
            dir,
        };
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        // The test process joins as .1.
        let peer = format!("s{}R", net.id);
        ip(&[
            "link",
            "add",
            &net.root_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &switch]);
        ip(&["-n", &switch, "link", "set", &peer, "master", "br0", "up"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            &net.root_link,
        ]);
        ip(&["link", "set", &net.root_link, "up"]);
        Some(net)
    }

    /// Adds host `name` at `<subnet>.<octet>` (2–254).
    pub fn host(&mut self, name: &str, octet: u8) -> Host {
        let ns = format!("smo-{}-{name}", self.id);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let (inner, outer) = (
            format!("s{}h{octet}", self.id),
            format!("s{}p{octet}", self.id),
        );
        ip(&[
            "link", "add", &inner, "type", "veth", "peer", "name", &outer,
        ]);
        ip(&["link", "set", &inner, "netns", &ns, "name", "eth0"]);
        ip(&["link", "set", &outer, "netns", &self.switch]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &outer,
            "master",
            "br0",
            "up",
        ]);
        let addr = format!("{}.{octet}", self.subnet);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        Host {
            name: name.to_string(),
            ns,
            ip: addr,
        }
    }

    /// `program` run inside `host`'s namespace.
    pub fn command(&self, host: &Host, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &host.ns]).arg(program);
        c
    }

    /// Starts `cmd` and keeps it, to be killed when the network is dropped.
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd.spawn().expect("process starts");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Stops everything `from` sends to `to` (replies included: TCP stalls both ways).
    pub fn cut(&self, from: &Host, to: &Host) {
        ip(&[
            "-n",
            &from.ns,
            "route",
            "add",
            "blackhole",
            &format!("{}/32", to.ip),
        ]);
    }

    /// Undoes [`Self::cut`].
    pub fn heal(&self, from: &Host, to: &Host) {
        ip(&[
            "-n",
            &from.ns,
            "route",
            "del",
            "blackhole",
            &format!("{}/32", to.ip),
        ]);
    }

    /// A PostgreSQL server of its own on `host` (port 5432, trust auth from this subnet); returns
    /// its URL.
    pub fn postgres(&mut self, host: &Host) -> String {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/setup)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("postgres").exists())
            .max()
            .expect("a PostgreSQL version");
        let data = self.dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        let own = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(own.success());
        let as_postgres = |program: PathBuf| {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
            c
        };
        let out = as_postgres(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str(&format!("host all all {}.0/24 trust\n", self.subnet));
        std::fs::write(&hba, rules).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns]).args([
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
        cmd.arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", &format!("listen_addresses={}", host.ip)])
            .args(["-c", &format!("unix_socket_directories={}", data.display())])
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.spawn(cmd);
        format!("postgres://postgres@{}:5432/postgres", host.ip)
    }
}

/// Sends `signal` (e.g. "STOP", "CONT", "KILL") to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

impl Drop for Net {
    fn drop(&mut self) {
        // Newest first: the workers before the servers they talk to.
        self.children.reverse();
        for c in &mut self.children {
            // A stopped process must be woken to die of SIGTERM; SIGKILL needs no waking.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_link])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
