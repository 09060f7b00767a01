//! The object-store registry's plumbing: the I/O runtime its synchronous calls run on,
//! and a store's errors turned into one line a person can act on.

use std::future::Future;
use std::sync::OnceLock;

/// The one runtime every object registry's I/O runs on (never dropped).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("treeserve-registry-io")
            .enable_all()
            .build()
            .expect("the registry's I/O runtime starts")
    })
}

/// Runs `fut` on the I/O runtime and waits for it (callable from any thread, inside a
/// runtime or not).
pub(in crate::registry) fn run<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the registry's I/O task finishes")
}

/// What the caller can do about a failed call. Read from the error's kind and its status
/// words, never from bare digits: the text carries the URL, and a port such as 40123 holds
/// "401".
pub(super) fn hint(e: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    let s = e.to_string();
    let denied = matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. })
        || ["403 Forbidden", "401 Unauthorized", "AuthenticationFailed"]
            .iter()
            .any(|w| s.contains(w));
    if denied {
        " (check the store's credentials: AWS_*, AZURE_STORAGE_* or GOOGLE_* in the environment)"
    } else if s.contains("error sending request") || s.contains("connect") {
        " (the store is unreachable: check the endpoint and the network)"
    } else {
        ""
    }
}

/// A store's error in a line: its last cause, and how many tries were made (the
/// crate's message repeats the request and the retry settings).
pub(super) fn describe(e: &object_store::Error) -> String {
    let text = e.to_string();
    let s = text.lines().next().unwrap_or(&text).trim();
    let mut cause = s.rsplit_once(" - ").map_or(s, |(_, c)| c.trim()).to_owned();
    // A store's XML error body: its code and message say it best (e.g. NoSuchBucket).
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find('<')?;
        Some(text[start..start + len].trim().to_owned())
    };
    if let Some(code) = tag("Code") {
        // "Server returned non-2xx status code: 403 Forbidden: <?xml …": up to the body.
        let status = cause.split('<').next().unwrap_or_default();
        let status = status.trim().trim_end_matches(':').trim().to_owned();
        // Azure's message goes on with RequestId and Time lines: its first line says it.
        let first = |m: String| m.lines().next().unwrap_or_default().trim().to_owned();
        cause = match tag("Message").map(first) {
            Some(m) => format!("{status}: {code}: {m}"),
            None => format!("{status}: {code}"),
        };
        if code == "NoSuchBucket" || code == "ContainerNotFound" {
            cause.push_str(" (create it, or fix --registry)");
        }
    }
    let tries = s
        .find(" after ")
        .and_then(|i| s[i + 7..].split(',').next())
        .filter(|t| t.ends_with("retries"))
        .map(|t| format!(" (after {t})"))
        .unwrap_or_default();
    let mut out = format!("{cause}{tries}");
    if out.len() > 300 {
        let mut end = 300;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::hint;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        }
    }

    #[test]
    fn a_port_with_401_or_403_in_it_is_not_a_credentials_problem() {
        for port in [40123, 40312, 14030] {
            let e = generic(&format!(
                "Error performing list request: error sending request for url \
                 (http://127.0.0.1:{port}/bucket?list-type=2) (after 2 retries)"
            ));
            assert!(hint(&e).contains("unreachable"), "{port}: {}", hint(&e));
        }
    }

    #[test]
    fn refused_credentials_say_so() {
        let denied = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "no".into(),
        };
        assert!(hint(&denied).contains("credentials"));
        let azure = generic(
            "Server returned non-2xx status code: 403 Forbidden: <Code>AuthenticationFailed</Code>",
        );
        assert!(hint(&azure).contains("credentials"));
        assert_eq!(
            hint(&generic("Server returned non-2xx status code: 500")),
            ""
        );
    }
}
