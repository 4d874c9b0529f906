//! Python's `info()` tutorial: print the module, parent and own pids from the parent and a child.
//!
//! ```python
//! def info(title):
//!     print(title, 'parent process:', os.getppid(), 'process id:', os.getpid())
//! ```

use shmproc::{Process, current_process, parent_process};

fn info(title: &str) {
    let me = current_process();
    match parent_process() {
        Some(parent) => {
            println!("{title}: I am {} (pid {}), my parent is {} (pid {})", me.name, me.pid, parent.name, parent.pid)
        }
        None => println!("{title}: I am {} (pid {}), I have no shmproc parent", me.name, me.pid),
    }
}

fn main() -> shmproc::Result<()> {
    info("main line");
    let p = Process::new(|| info("function f")).with_name("child");
    p.start()?;
    p.join()?;
    println!("child exit code: {:?}", p.exitcode());
    Ok(())
}
