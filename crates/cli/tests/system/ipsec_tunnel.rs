//! The IPSec link for real (DECISIONS 42, SPEC 1.10). `tolem ipsec` writes both sides'
//! strongSwan configuration; two network namespaces joined by a veth pair stand for the PS's
//! and the MPP's machines (TEST-NET addresses, no default route), and a strongSwan daemon in
//! each loads its side. The test checks that the negotiated algorithms are exactly the
//! regulation's, then pays a QR from the MPP's namespace (the wallet drives the reference MPP,
//! which calls the PS's MPP API through the tunnel) and refunds part of it (the PS calls the
//! MPP's `/refund` through the tunnel), and finds none of it in clear on the veth while the
//! same bytes are there on the tunnel's inside.
//!
//! It needs root (namespaces, a TUN device) and Debian's strongSwan packages, which
//! `scripts/install-test-packages` installs when they are missing. Not root: the test says it
//! is skipped and passes, unless `CI` is set, where that is a failure. The tunnel runs on SQLite
//! only: the PS in its namespace cannot reach the PostgreSQL pass's cluster on 127.0.0.1. Also
//! here: what `tolem ipsec` writes, which needs neither.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PS_GATEWAY: &str = "192.0.2.1";
const MPP_GATEWAY: &str = "192.0.2.2";
const PS_INNER: &str = "198.51.100.1";
const MPP_INNER: &str = "203.0.113.7";
const PS_URL: &str = "http://198.51.100.1:8080";
const MPP_URL: &str = "http://203.0.113.7:8091";
const KEY: &str = "test_7A5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A";
/// The SHA-256 of the POS's client certificate, as the proxy in front of the PS would name it.
const CERTIFICATE: &str = "5a1f0e7d3c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1";
const BIN: &str = "990340001234";

/// Each external command gets this long at most (`timeout`); none takes a second here.
const COMMAND_S_MAX: u32 = 60;
/// How long a daemon may take to open its socket, or the tunnel to show its rekeyed SA.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// The files the test runs, and the package that brings each (scripts/install-test-packages).
const TOOLS: &[&str] = &[
    "/usr/sbin/charon-systemd",
    "/usr/sbin/swanctl",
    "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so",
    "/usr/lib/ipsec/plugins/libstrongswan-openssl.so",
    "/usr/bin/tcpdump",
    "/usr/sbin/ip",
    "/usr/bin/curl",
];

fn ps_toml(db: &Path) -> String {
    format!(
        r#"caller_name = "tolem"
listen = "{PS_INNER}:8080"
public_url = "{PS_URL}"
database = "{db}"

[ipsec]
gateway = "{PS_GATEWAY}"

# r3 knows its caller by a client certificate alone (DECISIONS 41): here the POS's requests come
# from the PS's own address, standing for a TLS-terminating proxy that names the certificate.
[client_identity]
trusted_proxies = ["{PS_INNER}"]

[[mpps]]
caller_name = "bank"
name = "Tunnel Bank"
refund_url = "{MPP_URL}/refund"

[mpps.ipsec]
gateway = "{MPP_GATEWAY}"

[[organizations]]
bin = "{BIN}"
name = "ТОО «Tunnel Shop»"
api_keys = ["{KEY}"]
client_certificates = ["{CERTIFICATE}"]
# r3 only from the partner's listed addresses (DECISIONS 28): here the proxy's.
r3_allowed_ips = ["{PS_INNER}"]

[[trade_points]]
id = 1001
organization_bin = "{BIN}"
name = "Tunnel Coffee"
mcc = "5814"
terminal_type = "POS"
"#,
        db = db.display()
    )
}

fn mpp_toml(db: &Path) -> String {
    format!(
        r#"caller_name = "bank"
ps_url = "{PS_URL}"
listen = "{MPP_INNER}:8091"
database = "{db}"
customers = [ {{ id = "C1", name = "Айгерим", deposit = "50000" }} ]
"#,
        db = db.display()
    )
}

fn tolem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tolem"))
}

/// `tolem ipsec` into `out`; its stdout.
fn generate(config: &Path, out: &Path, extra: &[&str]) -> Output {
    tolem()
        .arg("ipsec")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("tolem ipsec runs")
}

#[test]
fn tolem_ipsec_keeps_its_key_secret_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, ps_toml(&dir.path().join("ps.db"))).expect("config");
    let out = dir.path().join("ipsec");
    let first = generate(&config, &out, &[]);
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("made a new pre-shared key"), "{stdout}");
    let files = [
        "bank/psk",
        "bank/ps/swanctl.conf",
        "bank/ps/secrets.conf",
        "bank/mpp/swanctl.conf",
        "bank/mpp/secrets.conf",
    ];
    let read = |name: &str| std::fs::read_to_string(out.join(name)).expect(name);
    let before: Vec<String> = files.iter().map(|f| read(f)).collect();
    let key = before[0].trim().to_owned();
    assert!(key.starts_with("0x") && key.len() == 66, "a 32-byte key");
    assert!(!stdout.contains(&key[2..]), "the key is never printed");
    for secret in ["bank/psk", "bank/ps/secrets.conf", "bank/mpp/secrets.conf"] {
        assert_eq!(mode(&out.join(secret)), 0o600, "{secret}");
        assert!(read(secret).contains(&key), "{secret} holds the key");
    }
    for public in ["bank/ps/swanctl.conf", "bank/mpp/swanctl.conf"] {
        assert!(!read(public).contains(&key[2..]), "{public} holds no key");
    }
    assert_eq!(mode(&out.join("bank")), 0o700);
    // Again, for this MPP alone: the key is kept and every file is the same.
    let again = generate(&config, &out, &["--mpp", "bank"]);
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("kept the pre-shared key"));
    let after: Vec<String> = files.iter().map(|f| read(f)).collect();
    assert_eq!(before, after);
    // A key others could read is refused, not used.
    set_mode(&out.join("bank/psk"), 0o644);
    let refused = generate(&config, &out, &[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{refused:?}"
    );
    // An unknown MPP, or a PS without its gateway, writes nothing.
    let unknown = generate(&config, &dir.path().join("none"), &["--mpp", "nobank"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobank"));
    let text = read_config(&config).replace(&format!("gateway = \"{PS_GATEWAY}\"\n"), "");
    std::fs::write(&config, text).expect("config");
    let no_gateway = generate(&config, &dir.path().join("none"), &[]);
    assert!(!no_gateway.status.success());
    assert!(String::from_utf8_lossy(&no_gateway.stderr).contains("ipsec.gateway"));
    assert!(!dir.path().join("none").exists(), "nothing written");
}

/// The guide's example configuration is valid and makes the link it describes. Here rather than
/// in tolem-ps's own tests, which are published with it: the guide is outside that package.
#[test]
fn the_ipsec_guides_example_is_a_valid_configuration() {
    let guide = include_str!("../../../../docs/ipsec.md");
    let example = guide
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML example in docs/ipsec.md");
    let config = tolem_ps::Config::from_toml(example).expect("a valid configuration");
    let psk = tolem_ps::ipsec::Psk::parse(&format!("0x{}", "ab".repeat(32))).expect("a key");
    let link = tolem_ps::ipsec::link(&config, &config.catalog.mpps[0], Some(&psk)).expect("a link");
    let local_ts: Vec<&str> = link
        .ps
        .swanctl
        .lines()
        .filter_map(|l| l.trim().strip_prefix("local_ts")?.trim().strip_prefix('='))
        .map(str::trim)
        .collect();
    assert_eq!(local_ts, ["198.51.100.1/32"]);
    assert!(link.mpp.swanctl.contains("    ps-tolem {"));
}

fn read_config(path: &Path) -> String {
    std::fs::read_to_string(path).expect("config")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether the test may run here: root, with the tools (installed when missing). `false`:
/// skipped, which `CI` does not allow.
fn may_run() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the IPSec tunnel test needs root, and CI must run it"
        );
        eprintln!(
            "\n*** ipsec_tunnel: skipped: needs root (network namespaces, a TUN device) ***\n"
        );
        return false;
    }
    if TOOLS.iter().any(|t| !Path::new(t).exists()) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-test-packages");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("the install script runs");
        assert!(status.success(), "{} failed", script.display());
    }
    for tool in TOOLS {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing after the install script"
        );
    }
    true
}

/// A command with a bound on its time: `timeout` ends it (and its children) if it hangs.
fn bounded(program: &str) -> Command {
    let mut command = Command::new("timeout");
    command.args(["--kill-after=5", &COMMAND_S_MAX.to_string(), program]);
    command
}

/// `program` inside network namespace `ns`, bounded.
fn in_ns(ns: &str, program: &str) -> Command {
    let mut command = bounded("ip");
    command.args(["netns", "exec", ns, program]);
    command
}

/// `program` inside `ns` as a daemon: `ip netns exec` becomes the program (it execs), so the
/// child is the program itself and killing it leaves nothing behind, which a `timeout` between
/// them would (SIGKILL cannot be passed on).
fn daemon_in_ns(ns: &str, program: &str) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns, program]);
    command
}

fn ok(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The two namespaces, and the veth between them; deleted on drop, whatever happened.
struct Namespaces {
    ps: String,
    mpp: String,
}

impl Namespaces {
    fn new() -> Namespaces {
        // Unique per run: a test killed half-way must not stop the next one.
        let tag = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let net = Namespaces {
            ps: format!("tolem-ps-{tag}"),
            mpp: format!("tolem-mpp-{tag}"),
        };
        for ns in [&net.ps, &net.mpp] {
            ok(bounded("ip").args(["netns", "add", ns]));
        }
        // The veth's ends are made inside the namespaces, so their names meet nothing else.
        ok(bounded("ip").args([
            "link", "add", "veth-ps", "netns", &net.ps, "type", "veth", "peer", "name", "veth-mpp",
            "netns", &net.mpp,
        ]));
        for (ns, veth, outer, inner) in [
            (&net.ps, "veth-ps", PS_GATEWAY, PS_INNER),
            (&net.mpp, "veth-mpp", MPP_GATEWAY, MPP_INNER),
        ] {
            let ip = |args: &[&str]| ok(bounded("ip").args(["-n", ns]).args(args));
            ip(&["addr", "add", &format!("{outer}/24"), "dev", veth]);
            ip(&["link", "set", veth, "up"]);
            ip(&["link", "set", "lo", "up"]);
            // The inner address on `lo` (no `dummy` driver here); no default route anywhere.
            ip(&["addr", "add", &format!("{inner}/32"), "dev", "lo"]);
        }
        net
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.ps, &self.mpp] {
            let _ = bounded("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A process the test started; killed and reaped on drop.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn spawn(name: &'static str, command: &mut Command) -> Daemon {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Daemon { name, child }
    }

    /// Its first stdout line, which says where it listens.
    fn first_line(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        assert!(
            !line.is_empty(),
            "{} ended before it said anything",
            self.name
        );
        line.trim().to_owned()
    }

    /// SIGINT, as a person's Ctrl-C (tcpdump then writes out what it holds), and waits.
    fn interrupt(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + WAIT_MAX;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not stop on SIGINT", self.name);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One side's strongSwan: its own `strongswan.conf`, vici socket and log, in its namespace.
struct Swan {
    ns: String,
    dir: PathBuf,
    _daemon: Daemon,
}

impl Swan {
    fn start(ns: &str, dir: &Path) -> Swan {
        std::fs::create_dir_all(dir).expect("swan dir");
        let socket = dir.join("charon.vici");
        // kernel-libipsec: ESP in user space over a TUN device, since the kernel here has XFRM
        // but no ESP transform; it forces UDP encapsulation (port 4500). `openssl` brings
        // ECP-256, `kdf` the PRF-based key derivation IKEv2 needs.
        let conf = format!(
            "charon {{
    load = random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-libipsec kernel-netlink socket-default vici
    plugins {{
        vici {{
            socket = unix://{socket}
        }}
    }}
    filelog {{
        main {{
            path = {log}
            default = 1
            ike = 2
            time_format = %T
        }}
    }}
}}
swanctl {{
    load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints
}}
",
            socket = socket.display(),
            log = dir.join("charon.log").display()
        );
        std::fs::write(dir.join("strongswan.conf"), conf).expect("strongswan.conf");
        let log = std::fs::File::create(dir.join("charon.out")).expect("log");
        let daemon = Daemon::spawn(
            "charon-systemd",
            daemon_in_ns(ns, "/usr/sbin/charon-systemd")
                .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
        );
        let swan = Swan {
            ns: ns.to_owned(),
            dir: dir.to_owned(),
            _daemon: daemon,
        };
        let deadline = Instant::now() + WAIT_MAX;
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "charon in {ns} opened no vici socket: {}",
                std::fs::read_to_string(dir.join("charon.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        swan
    }

    fn swanctl(&self, args: &[&str]) -> String {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        ok(in_ns(&self.ns, "swanctl")
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .args(args)
            .args(["--uri", &uri]))
    }

    /// Loads the generated files as an operator would, with `swanctl --load-all`.
    fn load(&self, generated: &Path) -> String {
        let top = self.dir.join("swanctl.conf");
        std::fs::write(
            &top,
            format!(
                "include {}\ninclude {}\n",
                generated.join("swanctl.conf").display(),
                generated.join("secrets.conf").display()
            ),
        )
        .expect("swanctl.conf");
        self.swanctl(&["--load-all", "--file", &top.display().to_string()])
    }
}

/// `swanctl --list-sas --pretty` as nested sections of `key = value` lines.
#[derive(Debug, Default)]
struct Section {
    values: std::collections::BTreeMap<String, String>,
    sections: Vec<(String, Section)>,
}

impl Section {
    fn parse(text: &str) -> Section {
        let mut lines = text.lines().map(str::trim);
        Section::read(&mut lines)
    }

    fn read<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Section {
        let mut section = Section::default();
        while let Some(line) = lines.next() {
            if line == "}" {
                break;
            }
            if let Some(name) = line.strip_suffix(" {") {
                let inner = Section::read(lines);
                section.sections.push((name.to_owned(), inner));
            } else if let Some((key, value)) = line.split_once(" = ") {
                let value = if value == "[" {
                    // A list: its items, one a line, up to `]`.
                    let items: Vec<&str> = lines.by_ref().take_while(|l| *l != "]").collect();
                    items.join(",")
                } else {
                    value.to_owned()
                };
                section.values.insert(key.to_owned(), value);
            }
        }
        section
    }

    fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    fn seconds(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is a number of seconds: {self:?}"))
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// The PS's IKE SA and its CHILD SA made by a rekeying (which carries the PFS group), once there.
fn rekeyed_sas(ps: &Swan) -> (Section, Section) {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let listing = Section::parse(&ps.swanctl(&["--list-sas", "--pretty"]));
        let ike = listing
            .section("list-sa event")
            .and_then(|event| event.section("mpp-bank"));
        if let Some(ike) = ike {
            let child = ike.section("child-sas").and_then(|children| {
                children
                    .sections
                    .iter()
                    .map(|(_, c)| c)
                    .find(|c| c.get("state") == "INSTALLED" && !c.get("dh-group").is_empty())
            });
            if let Some(child) = child {
                return (
                    Section {
                        values: ike.values.clone(),
                        sections: Vec::new(),
                    },
                    Section {
                        values: child.values.clone(),
                        sections: Vec::new(),
                    },
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no rekeyed CHILD SA: {listing:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// tcpdump writing what `interface` in `ns` carries to `file`, from the moment this returns.
fn capture(ns: &str, interface: &str, file: &Path) -> Daemon {
    let mut tcpdump = Daemon::spawn(
        "tcpdump",
        // Each packet written as it comes (`-U`), and handed over as it comes (immediate
        // mode: otherwise libpcap holds packets up to its buffer timeout, and SIGINT would
        // end the capture without them). `-Z root`: the file is in the test's own folder.
        daemon_in_ns(ns, "tcpdump")
            .args([
                "-Z",
                "root",
                "-n",
                "-U",
                "--immediate-mode",
                "-i",
                interface,
                "-w",
            ])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = tcpdump.child.stderr.take().expect("piped stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line).expect("tcpdump speaks");
    assert!(line.contains("listening on"), "tcpdump: {line}");
    // The rest is read to its end, so that tcpdump's last words at SIGINT find an open pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    tcpdump
}

/// Packets of an Ethernet capture (pcap): (UDP to or from port 4500, TCP, all).
fn count_packets(pcap: &[u8]) -> (usize, usize, usize) {
    let (mut esp_in_udp, mut tcp, mut all) = (0, 0, 0);
    let mut at = 24; // the file header
    while at + 16 <= pcap.len() {
        let captured =
            u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]);
        let start = at + 16;
        let end = start + captured as usize;
        let Some(frame) = pcap.get(start..end) else {
            break;
        };
        all += 1;
        // Ethernet (14 bytes), then IPv4 with its header length.
        if frame.len() > 14 + 20 && frame[12..14] == [0x08, 0x00] {
            let ip = &frame[14..];
            let header = usize::from(ip[0] & 0x0f) * 4;
            match ip[9] {
                17 if ip.len() >= header + 4 => {
                    let port = |i: usize| u16::from_be_bytes([ip[header + i], ip[header + i + 1]]);
                    if port(0) == 4500 || port(2) == 4500 {
                        esp_in_udp += 1;
                    }
                }
                6 => tcp += 1,
                _ => {}
            }
        }
        at = end;
    }
    (esp_in_udp, tcp, all)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A merchant API call made inside the PS's namespace, where the POS would be on its own side:
/// a POST of `body`, or a GET without one.
fn pos(ns: &str, path: &str, body: Option<&Value>) -> Value {
    let mut curl = in_ns(ns, "curl");
    curl.args(["-s", "--max-time", "30", "-H", &format!("Api-Key: {KEY}")]);
    curl.args(["-H", &format!("X-Client-Cert-SHA256: {CERTIFICATE}")]);
    if let Some(body) = body {
        curl.args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
    }
    let text = ok(curl.arg(format!("{PS_URL}{path}")));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

fn wallet(ns: &str, args: &[&str]) -> String {
    ok(in_ns(ns, env!("CARGO_BIN_EXE_tolem"))
        .args(["wallet", "--mpp", MPP_URL, "--customer", "C1"])
        .args(args)
        .stdin(Stdio::null()))
}

#[test]
fn the_tunnel_carries_a_payment_and_its_refund_with_the_regulations_algorithms() {
    // The PS runs in a network namespace of its own, which cannot reach a cluster on 127.0.0.1.
    if !crate::harness::sqlite_only("the PS in its network namespace reaches no cluster")
        || !may_run()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, ps_toml(&dir.path().join("ps.db"))).expect("config");
    let out = dir.path().join("ipsec");
    let generated = generate(&config, &out, &[]);
    assert!(generated.status.success(), "{generated:?}");

    // Declared first, dropped last: every process below is gone before the namespaces go.
    let net = Namespaces::new();
    let ps_swan = Swan::start(&net.ps, &dir.path().join("swan-ps"));
    let mpp_swan = Swan::start(&net.mpp, &dir.path().join("swan-mpp"));
    // The real check of the generated files: strongSwan takes them.
    let loaded = ps_swan.load(&out.join("bank/ps"));
    assert!(loaded.contains("loaded connection 'mpp-bank'"), "{loaded}");
    assert!(
        loaded.contains("loaded ike secret 'ike-mpp-bank'"),
        "{loaded}"
    );
    let loaded = mpp_swan.load(&out.join("bank/mpp"));
    assert!(loaded.contains("loaded connection 'ps-tolem'"), "{loaded}");
    assert!(
        loaded.contains("loaded ike secret 'ike-ps-tolem'"),
        "{loaded}"
    );

    let veth_file = dir.path().join("veth.pcap");
    let mut veth = capture(&net.ps, "veth-ps", &veth_file);
    let initiated = mpp_swan.swanctl(&["--initiate", "--child", "ps-tolem"]);
    assert!(
        initiated.contains("initiate completed successfully"),
        "{initiated}"
    );
    // The first CHILD SA is keyed from the IKE exchange itself; its rekeying runs a fresh
    // Diffie-Hellman exchange, which is where PFS shows.
    let rekeyed = mpp_swan.swanctl(&["--rekey", "--child", "ps-tolem"]);
    assert!(
        rekeyed.contains("rekey completed successfully"),
        "{rekeyed}"
    );
    let (ike, child) = rekeyed_sas(&ps_swan);
    println!(
        "IKE SA: IKEv{} {}-{} {} {} {}, rekeyed in {} s",
        ike.get("version"),
        ike.get("encr-alg"),
        ike.get("encr-keysize"),
        ike.get("integ-alg"),
        ike.get("prf-alg"),
        ike.get("dh-group"),
        ike.get("rekey-time")
    );
    println!(
        "CHILD SA: {} {} {}-{} {} PFS {}, ends in {} s, {} === {}",
        child.get("protocol"),
        child.get("mode"),
        child.get("encr-alg"),
        child.get("encr-keysize"),
        child.get("integ-alg"),
        child.get("dh-group"),
        child.get("life-time"),
        child.get("local-ts"),
        child.get("remote-ts")
    );
    for (key, want) in [
        ("version", "2"),
        ("state", "ESTABLISHED"),
        ("encr-alg", "AES_CBC"),
        ("encr-keysize", "256"),
        ("integ-alg", "HMAC_SHA2_256_128"),
        ("prf-alg", "PRF_HMAC_SHA2_256"),
        ("dh-group", "ECP_256"),
        ("local-host", PS_GATEWAY),
        ("remote-host", MPP_GATEWAY),
    ] {
        assert_eq!(ike.get(key), want, "IKE SA {key}: {ike:?}");
    }
    assert!(
        ike.seconds("rekey-time") <= 77_760,
        "rekeyed before 90 % of 86400 s"
    );
    for (key, want) in [
        ("protocol", "ESP"),
        ("mode", "TUNNEL"),
        ("encr-alg", "AES_CBC"),
        ("encr-keysize", "256"),
        ("integ-alg", "HMAC_SHA2_256_128"),
        ("dh-group", "ECP_256"),
        ("local-ts", "198.51.100.1/32"),
        ("remote-ts", "203.0.113.7/32"),
    ] {
        assert_eq!(child.get(key), want, "CHILD SA {key}: {child:?}");
    }
    assert!(
        child.seconds("life-time") <= 28_800,
        "no CHILD SA outlives 28800 s"
    );
    assert!(
        child.seconds("rekey-time") <= 25_920,
        "rekeyed before 90 % of it"
    );
    assert!(child.get("bytes-in").parse::<u64>().is_ok(), "{child:?}");

    // The tunnel's inside, on the PS's end: where the same requests must show in clear.
    let inside_file = dir.path().join("inside.pcap");
    let mut inside = capture(&net.ps, "ipsec0", &inside_file);

    let mut ps = Daemon::spawn(
        "tolem serve",
        daemon_in_ns(&net.ps, env!("CARGO_BIN_EXE_tolem"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    assert_eq!(ps.first_line(), format!("listening on {PS_URL}"));
    std::fs::write(
        dir.path().join("mpp.toml"),
        mpp_toml(&dir.path().join("mpp.db")),
    )
    .expect("mpp config");
    let mut mpp = Daemon::spawn(
        "tolem mpp",
        daemon_in_ns(&net.mpp, env!("CARGO_BIN_EXE_tolem"))
            .args(["mpp", "--config"])
            .arg(dir.path().join("mpp.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    assert_eq!(mpp.first_line(), format!("listening on {MPP_URL}"));

    // The POS, on the PS's side, makes a QR for 1500 ₸ …
    let device = pos(
        &net.ps,
        "/r1/v01/device/register",
        Some(&json!({"DeviceId": "POS-1", "TradePointId": 1001})),
    );
    let device = device["Data"]["DeviceToken"]
        .as_str()
        .expect("a device")
        .to_owned();
    let qr = pos(
        &net.ps,
        "/r1/v01/qr/create",
        Some(&json!({"DeviceToken": device, "Amount": 1500})),
    );
    let token = qr["Data"]["QrToken"].as_str().expect("a token").to_owned();
    let payment = qr["Data"]["QrPaymentId"].as_i64().expect("an id");
    // … the customer pays it in the MPP's namespace: scan and notifyPayment cross the tunnel …
    let paid = wallet(&net.mpp, &["pay", &token, "--yes"]);
    assert!(paid.contains("Оплачено: 1 500,00 ₸"), "{paid}");
    let status = pos(&net.ps, &format!("/r1/v02/payment/status/{payment}"), None);
    assert_eq!(status["Data"]["Status"], "Processed", "{status}");
    // … and the POS refunds 500 ₸: the PS delivers it to the MPP's /refund through the tunnel,
    // and answers once the MPP said SUCCESS (DECISIONS 39).
    let refund = pos(
        &net.ps,
        "/r3/v01/payment/return",
        Some(
            &json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": 500, "OrganizationBin": BIN}),
        ),
    );
    assert_eq!(refund["StatusCode"], 0, "{refund}");
    let refund_id = refund["Data"]["ReturnOperationId"].as_i64().expect("an id");
    let balance: String = wallet(&net.mpp, &["balance"])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        balance.contains("49000,00"),
        "50 000 − 1 500 + 500: {balance}"
    );

    drop(ps);
    drop(mpp);
    veth.interrupt();
    inside.interrupt();
    let veth_bytes = std::fs::read(&veth_file).expect("the veth capture");
    let inside_bytes = std::fs::read(&inside_file).expect("the inside capture");
    let (esp_in_udp, tcp, all) = count_packets(&veth_bytes);
    println!("veth: {all} packets, {esp_in_udp} of them UDP 4500 (IKE and ESP), {tcp} TCP");
    assert!(
        esp_in_udp >= 10,
        "the exchanges went as ESP in UDP: {esp_in_udp} of {all}"
    );
    assert_eq!(tcp, 0, "no TCP in clear on the veth");
    let refund_field = format!("\"refundId\":\"{refund_id}\"");
    for needle in [
        token.as_str(),
        "notifyPayment",
        "/api/v1/qr/scan",
        "POST /refund",
        "\"refundId\"",
        refund_field.as_str(),
        "X-Caller-Name",
        "x-caller-name",
    ] {
        assert!(
            !contains(&veth_bytes, needle),
            "{needle:?} in clear on the veth"
        );
    }
    // The control: the same searches find them inside the tunnel, so they would have been seen.
    for needle in [
        token.as_str(),
        "notifyPayment",
        "POST /refund",
        "\"refundId\"",
    ] {
        assert!(
            contains(&inside_bytes, needle),
            "{needle:?} not inside the tunnel"
        );
    }
}

/// Once the PS has run, the operator data is its database's: an MPP added there (through the
/// admin API, say) gets its link too, and the file's MPPs are still made.
#[tokio::test]
async fn tolem_ipsec_makes_the_links_of_the_mpps_in_the_database_too() {
    let dir = tempfile::tempdir().expect("dir");
    let db = crate::harness::fresh_database(dir.path());
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, ps_toml(&db)).expect("config");
    let added = tolem_ps::Config::from_toml(
        r#"
[[mpps]]
caller_name = "wallet"
name = "Added Wallet"
refund_url = "http://203.0.113.8:8092/refund"

[mpps.ipsec]
gateway = "192.0.2.3"
"#,
    )
    .expect("an MPP");
    let limits = tolem_ps::store::StoreLimits::of(&tolem_ps::Config::default().limits);
    let store = tolem_ps::store::Store::open(&db, &limits).expect("a database");
    store
        .seed_catalog(added.catalog, jiff::Timestamp::now())
        .await
        .expect("seeded");
    drop(store);
    let out = dir.path().join("ipsec");
    let made = generate(&config, &out, &[]);
    assert!(made.status.success(), "{made:?}");
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(stdout.contains("MPPs of the database"), "{stdout}");
    let wallet = std::fs::read_to_string(out.join("wallet/ps/swanctl.conf")).expect("its link");
    assert!(wallet.contains("203.0.113.8/32"), "{wallet}");
    assert!(
        out.join("bank/ps/swanctl.conf").exists(),
        "the file's MPP too"
    );
}
