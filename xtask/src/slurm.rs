//! Slurm: `cargo xtask experiment FILE --slurm` writes the experiment's job array
//! (mpcl-experiment's `slurm` module) and prints how to submit it; `cargo xtask test
//! --slurm` starts a single-node Slurm from Debian's packages on this machine, runs a
//! two-run grid through it and stops the daemons again.
//!
//! The test cluster lives in a private network namespace (`unshare --net`) that has only
//! the loopback interface: slurmctld and slurmd listen on every address of their namespace,
//! and there every address is on lo. Its munge key, state, spool, logs and configuration
//! are in a temporary directory; nothing under /etc is read or changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpcl_experiment::slurm::{self, ArraySpec, SlurmSettings};
use mpcl_experiment::{Experiment, Report};

use crate::{data, run_cmd, say};

/// The `--slurm` flags of `cargo xtask experiment`.
#[derive(clap::Args, Debug, Default)]
#[group(id = "slurm-flags")]
pub struct Args {
    /// Write an sbatch script for the grid (one array task per run) instead of running it.
    #[arg(long)]
    pub slurm: bool,
    /// Slurm partition (overrides slurm.partition).
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Time limit per task, e.g. 90, 02:00:00 or 1-00:00:00 (overrides slurm.time).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// CPUs per task (overrides slurm.cpus).
    #[arg(long, requires = "slurm")]
    cpus: Option<u32>,
    /// Memory per task, e.g. 16G (overrides slurm.mem).
    #[arg(long, requires = "slurm")]
    mem: Option<String>,
    /// GPUs per task (overrides slurm.gpus).
    #[arg(long, requires = "slurm")]
    gpus: Option<u32>,
    /// Account to charge (overrides slurm.account).
    #[arg(long, requires = "slurm")]
    account: Option<String>,
}

impl Args {
    /// Checks the flags' values before anything is built; the error names the flag.
    pub fn check(&self) -> anyhow::Result<()> {
        self.settings()
            .check()
            .map_err(|e| anyhow::anyhow!("--{e}"))
    }

    /// The flags as settings, for overriding the file's `[slurm]` table.
    fn settings(&self) -> SlurmSettings {
        SlurmSettings {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus: self.cpus,
            mem: self.mem.clone(),
            gpus: self.gpus,
            account: self.account.clone(),
        }
    }
}

/// Writes the job array of `exp` (whose `mpcl` binary is built) into `exp_dir` and prints
/// the commands to submit it and to report afterwards.
pub fn write(
    exp: &Experiment,
    exp_dir: &Path,
    args: &Args,
    data_dir: Option<&Path>,
    mpcl: &Path,
) -> anyhow::Result<slurm::ArrayJob> {
    let settings = SlurmSettings::from_file(&exp.file)?.overridden_by(args.settings());
    let exp_dir = std::path::absolute(exp_dir)?;
    let data_dir = data_dir.map(std::path::absolute).transpose()?;
    let default_data_dir = std::path::absolute(data::resolve_dir(None))?;
    let spec = ArraySpec {
        mpcl,
        data_dir: data_dir.as_deref(),
        default_data_dir: &default_data_dir,
        settings: &settings,
    };
    let job = slurm::write_array(exp, &exp_dir, &spec)?;
    say(format!(
        "wrote {} ({} array tasks, one per run), its task list {} and the logs folder {}",
        job.script.display(),
        job.count,
        job.tasks.display(),
        job.logs.display()
    ));
    say(format!(
        "each task runs {} by its absolute path: the compute nodes need no cargo, but this \
         binary, libtorch and the data must be on a filesystem they share",
        mpcl.display()
    ));
    let quote = |p: &Path| shlex::try_quote(&p.to_string_lossy()).map(|q| q.into_owned());
    println!("submit with:\n  sbatch {}", quote(&job.script)?);
    let runs_dir = exp_dir.parent().unwrap_or(Path::new("/"));
    println!(
        "then, when the array is done (or at any time, for the runs finished so far):\n  \
         cargo xtask report {} --runs-dir {}",
        quote(&exp.file)?,
        quote(runs_dir)?
    );
    Ok(job)
}

/// A two-run grid for the real-Slurm test: the tiny settings of the trainer's resume tests.
const GRID: &str = r#"
[experiment]
name = "slurm-e2e"
description = "cargo xtask test --slurm: two seeds through a single-node Slurm"
[base.data]
train_subset = 256
test_subset = 128
[base.model]
widths = [8, 16]
projector_hidden = 32
projector_dim = 16
[base.train]
epochs = 1
batch_size = 64
[base.eval.probe]
epochs = 1
[base.checkpoint]
every_steps = 2
[axes]
seed = [0, 1]
[slurm]
cpus = 1
time = "15"
"#;

/// `cargo xtask test --slurm`, the part outside the network namespace: provisions what the
/// cluster needs (Debian's packages, Fashion-MNIST, the release `mpcl`), then runs
/// [`inside`] under `unshare --net`.
pub fn real_test(data_dir: &Path, mpcl: &Path) -> anyhow::Result<()> {
    let needed = [
        "munged",
        "mungekey",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "scontrol",
    ];
    if needed.iter().any(|b| which(b).is_none()) {
        say("installing Slurm and munge from Debian's packages (apt-get)");
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(["slurmctld", "slurmd", "slurm-client", "munge"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("Slurm's packages could not be installed (as root: apt-get update first)")?;
    }
    let exe = std::env::current_exe()?;
    say("starting a single-node Slurm in a network namespace with loopback only");
    run_cmd(
        Command::new("unshare")
            .arg("--net")
            .arg(exe)
            .args(["test", "--slurm-inside", "--data-dir"])
            .arg(data_dir)
            .arg("--mpcl")
            .arg(mpcl),
    )
}

/// The daemons this test started, stopped when dropped (on success and on failure).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    /// Generates a munge key and a configuration under `dir`, starts munged, slurmctld and
    /// slurmd, and waits for the node to be idle.
    fn start(dir: &Path) -> anyhow::Result<Self> {
        run_cmd(Command::new("ip").args(["link", "set", "lo", "up"]))?;
        // Slurm resolves its listening address with AI_ADDRCONFIG, which finds nothing where
        // the only addresses are loopback ones; a benchmarking address (RFC 2544) on lo
        // satisfies it and, being on lo, reaches nothing outside.
        run_cmd(Command::new("ip").args(["addr", "add", "198.18.0.1/32", "dev", "lo"]))?;
        let p = |name: &str| dir.join(name);
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(p(sub))?;
        }
        // From here on, dropping it stops whatever was started.
        let cluster = Self {
            dir: dir.to_owned(),
            conf: p("slurm.conf"),
        };
        run_cmd(
            Command::new("mungekey")
                .arg("--create")
                .arg("--keyfile")
                .arg(p("munge.key")),
        )?;
        let mut munged = Command::new("munged");
        // --force: the temporary directory's parents are world-writable (/tmp), which
        // munged otherwise refuses for its socket.
        munged
            .arg("--force")
            .arg(format!("--socket={}", p("munge.socket").display()))
            .arg(format!("--key-file={}", p("munge.key").display()))
            .arg(format!("--pid-file={}", p("munged.pid").display()))
            .arg(format!("--log-file={}", p("munged.log").display()))
            .arg(format!("--seed-file={}", p("munge.seed").display()));
        run_cmd(&mut munged)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = cluster.conf.clone();
        std::fs::write(&conf, slurm_conf(dir, cpus, memory_mb()?))?;
        run_cmd(Command::new("slurmctld").arg("-f").arg(&conf))?;
        run_cmd(
            Command::new("slurmd")
                .arg("-f")
                .arg(&conf)
                .args(["-N", "localhost"]),
        )?;
        let start = Instant::now();
        loop {
            let out = cluster.client("sinfo").args(["-h", "-o", "%T"]).output()?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "idle" {
                say(format!("slurm is up: node localhost idle ({cpus} CPUs)"));
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the node is not idle after 60 s (sinfo: {state:?}); logs in {}",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(cluster)
    }

    /// A Slurm client command talking to this cluster.
    fn client(&self, name: &str) -> Command {
        let mut cmd = Command::new(name);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Best effort while stopping: each daemon by the pid it wrote, after asking Slurm.
        let _ = self.client("scontrol").arg("shutdown").status();
        std::thread::sleep(Duration::from_secs(2));
        for pid in ["slurmd.pid", "slurmctld.pid", "munged.pid"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(text.trim()).status();
            }
        }
        say("stopped munged, slurmctld and slurmd");
    }
}

/// The configuration of a one-node cluster on 127.0.0.1 with everything under `dir`.
fn slurm_conf(dir: &Path, cpus: usize, memory_mb: u64) -> String {
    let d = dir.display();
    format!(
        "ClusterName=mpcl-test\n\
         SlurmctldHost=localhost(127.0.0.1)\n\
         SlurmUser=root\nSlurmdUser=root\n\
         SlurmctldPort=6817\nSlurmdPort=6818\n\
         AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={d}/munge.socket\n\
         StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
         SchedulerType=sched/backfill\nSelectType=select/cons_tres\n\
         SelectTypeParameters=CR_CPU\nMpiDefault=none\nReturnToService=2\n\
         JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
         NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN\n\
         PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
    )
}

/// Half the machine's memory in MB (from /proc/meminfo), so slurmd never finds less.
fn memory_mb() -> anyhow::Result<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("/proc/meminfo: no MemTotal")?;
    Ok(kb / 1024 / 2)
}

/// `cargo xtask test --slurm`, inside the namespace: the cluster, the grid through
/// `sbatch`, the checks, the report.
pub fn inside(data_dir: &Path, mpcl: &Path) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("mpcl-slurm-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let cluster = Cluster::start(&tmp.join("cluster"))?;
    let file = tmp.join("slurm-e2e.toml");
    std::fs::write(&file, GRID)?;
    let exp = Experiment::load(&file)?;
    let exp_dir = tmp.join("runs").join(&exp.name);
    let args = Args {
        slurm: true,
        ..Args::default()
    };
    let job = write(&exp, &exp_dir, &args, Some(data_dir), mpcl)?;
    let out = cluster
        .client("sbatch")
        .arg("--parsable")
        .arg(&job.script)
        .output()?;
    if !out.status.success() {
        bail!(
            "sbatch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    say(format!("sbatch: submitted array job {id}"));
    let start = Instant::now();
    loop {
        let out = cluster.client("squeue").args(["-h", "-j", &id]).output()?;
        let queue = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if queue.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(900) {
            bail!("job {id} still queued after 15 minutes:\n{queue}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    say(format!(
        "array job {id} left the queue after {:.0} s",
        start.elapsed().as_secs_f64()
    ));
    let mut failed = Vec::new();
    for (i, run) in exp.runs.iter().enumerate() {
        let log = job.logs.join(format!("slurm-{id}_{i}.out"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        say(format!(
            "task {i} log ({}), last lines:\n    {}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
        ));
        if !exp_dir.join(run.rel_dir()).join("results.json").exists() {
            failed.push(run.rel_dir().display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!(
            "not finished: {}; logs in {}",
            failed.join(", "),
            job.logs.display()
        );
    }
    let report = Report::build(&exp, &exp_dir)?;
    report.write(&exp_dir)?;
    let Some(row) = report.rows.iter().find(|r| r.kind == "trained") else {
        bail!("the report has no trained row");
    };
    if row.per_seed.len() != 2 {
        bail!("the report has {} of 2 seeds", row.per_seed.len());
    }
    say(format!(
        "report rebuilt: {} with 2/2 seeds, linear top-1 {:.3}",
        exp_dir.join("report.md").display(),
        row.probe_top1.as_ref().map_or(f64::NAN, |s| s.mean)
    ));
    drop(cluster);
    // Only on success: a failure leaves the logs and runs for inspection.
    std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    say("slurm test passed");
    Ok(())
}

/// The path of an executable on `$PATH` (plus the sbin folders, where Debian puts daemons).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
