//! Python's documentation example for shared ctypes:
//!
//! ```python
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//! num = Value('d', 0.0)
//! arr = Array('i', range(10))
//! p = Process(target=f, args=(num, arr)); p.start(); p.join()
//! print(num.value)   # 3.1415927
//! print(arr[:])      # [0, -1, -2, ..., -9]
//! ```

use shmproc::{Array, Process, RawValue, Value};

fn main() -> shmproc::Result<()> {
    let num = Value::new(0.0f64)?;
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let p = Process::new({
        let (num, arr) = (num.clone(), arr.clone());
        move || {
            num.set(std::f64::consts::PI).expect("set"); // Python: n.value = 3.1415927
            for x in arr.lock().expect("lock").iter_mut() {
                *x = -*x;
            }
        }
    });
    p.start()?;
    p.join()?;
    println!("num = {}", num.get()?);
    println!("arr = {:?}", arr.to_vec()?);

    // RawValue: no lock, atomic operations (Python's RawValue is unsynchronised memory).
    let hits = RawValue::new(0u64)?;
    let p = Process::new({
        let hits = hits.clone();
        move || {
            for _ in 0..1000 {
                hits.fetch_add(1);
            }
        }
    });
    p.start()?;
    p.join()?;
    println!("raw hits = {}", hits.load());
    Ok(())
}
