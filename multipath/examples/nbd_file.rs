//! Serve a file over NBD on a unix socket until interrupted:
//! `cargo run -p hydra-multipath --example nbd_file -- FILE SOCKET [EXPORT]`
//! (then e.g. `qemu-img info nbd+unix:///EXPORT?socket=SOCKET`, `nbdfuse`, fio's nbd
//! engine). The export is called `lun` unless named.

use std::sync::Arc;

use hydra_multipath::export::file::FileDevice;
use hydra_multipath::export::nbd::{bind_unix, NbdServer};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, socket, rest @ ..] = &args[..] else {
        eprintln!("usage: nbd_file FILE SOCKET [EXPORT]");
        std::process::exit(2);
    };
    let name = rest.first().map_or("lun", String::as_str);
    let server = NbdServer::new();
    server.add_export(name, Arc::new(FileDevice::open(file.as_ref(), false)?));
    let listener = bind_unix(socket.as_ref())?;
    eprintln!("serving {file} as nbd+unix:///{name}?socket={socket}");
    tokio::select! {
        r = server.serve_unix(listener) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}
