//! The web page in a real browser: Debian's chromium, driven through
//! chromedriver (WebDriver) with `fantoccini`, against real nodes on
//! loopback. An order placed with the form on one node's page shows up on
//! another node's page, live; cancelled with its button, it goes from both;
//! a refused order shows the node's error in place; a node that needs a
//! token gets it from the page and then streams.
//!
//! chromedriver is required: without it these tests fail and name the
//! command that installs it (`scripts/test`), they do not skip.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use common::{eventually, Node, NodeOpts};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use peerbook::clock::now_ms;
use serde_json::{json, Value};

/// One browser at a time: the machine is small and chromium is not.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver process on a free loopback port, in a process group of
/// its own with the chromium it starts; the whole group is killed when
/// dropped, so a failing test leaves no browser behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group our own child leads.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

async fn start_driver() -> Driver {
    let Some(exe) = find_on_path("chromedriver") else {
        panic!(
            "chromedriver is not installed, and the browser tests need it with chromium.\n\
             Run the whole suite with `scripts/test` (as root it installs them), or\n\
             install them yourself: sudo apt-get install -y chromium chromium-driver"
        );
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port");
    let child = Command::new(exe)
        .process_group(0)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let status = format!("{}/status", driver.url);
    eventually("chromedriver to answer", String::new, || async {
        let r = http.get(&status).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        (v["value"]["ready"] == true).then_some(())
    })
    .await;
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ];
    if std::env::var_os("PEERBOOK_BROWSER_HEADFUL").is_some() {
        args.remove(0);
    }
    let mut options = json!({ "args": args });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut caps = Capabilities::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromedriver cannot start chromium")
}

/// The page's state for failure messages.
fn context(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| n.output())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn text_of(b: &Client, css: &str) -> Option<String> {
    b.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn exists(b: &Client, css: &str) -> bool {
    b.find_all(Locator::Css(css))
        .await
        .map(|v| !v.is_empty())
        .unwrap_or(false)
}

/// Wait until the page's event stream is live (it then loads everything).
async fn wait_live(b: &Client, node: &Node) {
    eventually(
        "the page's event stream to be live",
        || node.output(),
        || async { exists(b, "#conn[data-state=live]").await.then_some(()) },
    )
    .await;
    eventually(
        "the page to list the markets",
        || node.output(),
        || async {
            exists(b, "#market option[value=BTC-USD]")
                .await
                .then_some(())
        },
    )
    .await;
}

async fn fill(b: &Client, css: &str, value: &str) {
    let e = b.find(Locator::Css(css)).await.expect(css);
    e.clear().await.expect("clear");
    e.send_keys(value).await.expect("type");
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

async fn own_open_orders(node: &Node) -> Vec<Value> {
    let r = node
        .http()
        .get(node.url("/api/v1/orders?status=open"))
        .send()
        .await
        .expect("orders");
    r.json().await.expect("orders JSON")
}

#[tokio::test]
async fn an_order_placed_on_one_page_shows_live_on_another_nodes_page_and_goes_when_cancelled() {
    let _one = BROWSER.lock().await;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("a", dir_a.path()).start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("b", dir_b.path()).bootstrap(a.addr()).start();
    b.ready().await;
    b.connected_to(&a_id).await;

    let driver = start_driver().await;
    let web = browser(&driver).await;
    let ctx = || context(&[&a, &b]);

    web.goto(&a.url("/")).await.expect("open A's page");
    let tab_a = web.window().await.expect("window");
    wait_live(&web, &a).await;
    let tab_b = web.new_window(true).await.expect("new tab").handle;
    web.switch_to_window(tab_b.clone()).await.expect("switch");
    web.goto(&b.url("/")).await.expect("open B's page");
    wait_live(&web, &b).await;

    // Place a sell through A's form.
    web.switch_to_window(tab_a.clone()).await.expect("switch");
    click(&web, "button[data-side=sell]").await;
    fill(&web, "#price", "123.45").await;
    fill(&web, "#quantity", "0.5").await;
    click(&web, "#place").await;
    let id = eventually("the order in A's open orders", ctx, || async {
        let row = web.find(Locator::Css("#orders tr[data-id]")).await.ok()?;
        let text = row.text().await.ok()?;
        if !text.contains("123.45") {
            return None;
        }
        row.attr("data-id").await.ok()?
    })
    .await;
    assert!(id.starts_with(&a_id), "{id} is not A's");
    let ok = text_of(&web, "#order-ok").await.unwrap_or_default();
    assert!(ok.contains("open"), "confirmation: {ok:?}");

    // B's page shows it in its book, without a reload.
    web.switch_to_window(tab_b.clone()).await.expect("switch");
    eventually("the ask on B's page", ctx, || async {
        let t = text_of(&web, "#book-asks tr[data-price=\"123.45\"]").await?;
        t.contains("0.5").then_some(())
    })
    .await;

    // Cancel it with its button on A's page.
    web.switch_to_window(tab_a.clone()).await.expect("switch");
    click(&web, &format!("#orders button.cancel[data-id=\"{id}\"]")).await;
    eventually("the order to leave A's open orders", ctx, || async {
        (!exists(&web, &format!("#orders tr[data-id=\"{id}\"]")).await).then_some(())
    })
    .await;

    // B's page drops it from the book.
    web.switch_to_window(tab_b.clone()).await.expect("switch");
    eventually("the ask to leave B's page", ctx, || async {
        let gone = !exists(&web, "#book-asks tr[data-price=\"123.45\"]").await;
        let book_shown = exists(&web, "#spread").await;
        (gone && book_shown).then_some(())
    })
    .await;

    // A refused order: the node's message, in place, and nothing placed.
    web.switch_to_window(tab_a.clone()).await.expect("switch");
    fill(&web, "#price", "-5").await;
    fill(&web, "#quantity", "1").await;
    click(&web, "#place").await;
    let error = eventually("the error under the form", ctx, || async {
        let e = web.find(Locator::Css("#order-error")).await.ok()?;
        if !e.is_displayed().await.ok()? {
            return None;
        }
        e.text().await.ok().filter(|t| !t.is_empty())
    })
    .await;
    assert!(
        error.contains("price must be greater than zero"),
        "error shown: {error:?}"
    );
    let invalid = web
        .find(Locator::Css("#price"))
        .await
        .expect("price")
        .attr("aria-invalid")
        .await
        .expect("attr");
    assert_eq!(invalid.as_deref(), Some("true"));
    fill(&web, "#price", "10").await;
    fill(&web, "#quantity", "lots").await;
    click(&web, "#place").await;
    eventually("the quantity error", ctx, || async {
        let t = text_of(&web, "#order-error").await?;
        t.contains("quantity").then_some(())
    })
    .await;
    assert!(
        own_open_orders(&a).await.is_empty(),
        "a refused order was placed"
    );

    // An order good for an hour: the node has its expiry, the list says it.
    js(
        &web,
        "document.getElementById('expires').value = '3600000'; return 1;",
    )
    .await;
    fill(&web, "#price", "130").await;
    fill(&web, "#quantity", "0.25").await;
    let before = now_ms();
    click(&web, "#place").await;
    let row = eventually("the expiring order in the list", ctx, || async {
        let t = text_of(&web, "#orders tr[data-id]").await?;
        t.contains("130").then_some(t)
    })
    .await;
    assert!(row.contains("till"), "the list shows the expiry: {row:?}");
    let open = own_open_orders(&a).await;
    let at = open[0]["expires_at"]
        .as_u64()
        .expect("an expiry on the node");
    assert!(
        at >= before + 3_600_000 && at <= now_ms() + 3_600_000,
        "{}",
        open[0]
    );

    web.close().await.expect("close the browser");
}

#[tokio::test]
async fn the_page_asks_for_the_token_a_guarded_node_needs_and_then_streams() {
    let _one = BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("guarded", dir.path()).env("PEERBOOK_API_TOKEN", "page-s3cret");
    opts.api_host = "0.0.0.0".into();
    let node = opts.start();
    node.ready_with_token("page-s3cret").await;

    let driver = start_driver().await;
    let web = browser(&driver).await;
    web.goto(&node.url("/")).await.expect("open the page");
    eventually(
        "the page to ask for the token",
        || node.output(),
        || async {
            let form = web.find(Locator::Css("#token-form")).await.ok()?;
            let shown = form.is_displayed().await.ok()?;
            let locked = exists(&web, "#conn[data-state=locked]").await;
            (shown && locked).then_some(())
        },
    )
    .await;
    fill(&web, "#token", "page-s3cret").await;
    click(&web, "#token-form button[type=submit]").await;
    wait_live(&web, &node).await;

    // It stays: a reload streams at once with the stored token.
    web.refresh().await.expect("reload");
    wait_live(&web, &node).await;
    let stored = web
        .execute("return localStorage.getItem('peerbook.token')", vec![])
        .await
        .expect("script");
    assert_eq!(stored, json!("page-s3cret"));
    web.close().await.expect("close the browser");
}

/// Run `script` in the page and return what it returns.
async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![]).await.expect("script")
}

#[tokio::test]
async fn the_page_shows_market_data_own_fills_and_stale_orders_and_fits_700px() {
    let _one = BROWSER.lock().await;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("a", dir_a.path())
        .env("PEERBOOK_ENGINE_STALE_AFTER_MS", "2000")
        .start();
    let a_id = a.ready().await.peer_id;
    let mut b = NodeOpts::new("b", dir_b.path()).bootstrap(a.addr()).start();
    b.ready().await;
    b.connected_to(&a_id).await;
    let ctx = || context(&[&a, &b]);

    // B rests two sells; A takes half of the first, and rests a bid.
    for p in ["100", "101"] {
        b.place(json!({"market": "BTC-USD", "side": "sell", "price": p, "quantity": "1"}))
            .await;
    }
    eventually("B's orders in A's book", ctx, || async {
        let book = a.get_json("/api/v1/book/BTC-USD").await;
        (book.body["orders"] == 2).then_some(())
    })
    .await;
    let taken = a
        .place(json!({"market": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5", "time_in_force": "ioc"}))
        .await;
    assert_eq!(taken["status"], "filled", "{taken}");
    a.place(json!({"market": "BTC-USD", "side": "buy", "price": "98", "quantity": "1"}))
        .await;

    let driver = start_driver().await;
    let web = browser(&driver).await;
    web.goto(&a.url("/")).await.expect("open A's page");
    wait_live(&web, &a).await;

    // The ticker: last price and the 24 h figures.
    eventually("BTC-USD's ticker", ctx, || async {
        let last = text_of(&web, "#tickers [data-market=BTC-USD] .last").await?;
        (last == "100.00").then_some(())
    })
    .await;
    let t = |css: &'static str| {
        let web = &web;
        async move {
            text_of(web, &format!("#tickers [data-market=BTC-USD] {css}"))
                .await
                .unwrap_or_default()
        }
    };
    assert_eq!(t(".high").await, "100.00");
    assert_eq!(t(".low").await, "100.00");
    assert_eq!(t(".volume").await, "0.5");
    assert!(t(".change").await.contains('%'), "{}", t(".change").await);
    assert!(exists(&web, "#tickers [data-market=ETH-USD]").await);

    // The candle chart, and its intervals.
    let candles = |interval: &'static str| {
        let web = &web;
        async move {
            let c = web.find(Locator::Css("#candles")).await.ok()?;
            let drawn: u32 = c.attr("data-candles").await.ok()??.parse().ok()?;
            let at = c.attr("data-interval").await.ok()??;
            let labels = c.attr("data-price-labels").await.ok()??;
            (at == interval && drawn >= 1 && !labels.is_empty()).then_some(labels)
        }
    };
    let labels = eventually("a 1m candle", ctx, || candles("1m")).await;
    assert!(labels.split(',').count() >= 2, "price labels: {labels}");
    click(&web, "button.interval[data-interval=\"5m\"]").await;
    eventually("a 5m candle", ctx, || candles("5m")).await;
    click(&web, "button.interval[data-interval=\"1h\"]").await;
    eventually("a 1h candle", ctx, || candles("1h")).await;

    // This node's fills and done orders.
    let fill = eventually("A's fill as taker", ctx, || async {
        let t = text_of(&web, "#fills tr[data-role=taker]").await?;
        t.contains("100.00").then_some(t)
    })
    .await;
    assert!(fill.contains("0.5000") && fill.contains("buy"), "{fill}");
    let done = text_of(&web, "#done tr").await.unwrap_or_default();
    assert!(done.contains("filled"), "done orders: {done}");

    // Own orders marked in the ladder.
    let own = eventually("A's bid marked as its own", ctx, || async {
        text_of(&web, "#book-bids tr.own[data-price=\"98\"]").await
    })
    .await;
    assert!(own.contains("mine"), "{own}");
    assert!(!exists(&web, "#book-asks tr.own").await);

    // The depth chart: axes with labels, and a readout under the pointer.
    let x_labels = js(
        &web,
        "return document.querySelectorAll('#depth text.axis-label.x').length",
    )
    .await;
    let y_labels = js(
        &web,
        "return document.querySelectorAll('#depth text.axis-label.y').length",
    )
    .await;
    assert!(
        x_labels.as_u64() >= Some(2) && y_labels.as_u64() >= Some(1),
        "{x_labels} {y_labels}"
    );
    let readout = js(
        &web,
        "const s = document.getElementById('depth'); const r = s.getBoundingClientRect();\
         s.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width * 0.15, clientY: r.top + r.height / 2, bubbles: true}));\
         const o = document.getElementById('depth-readout'); return o.hidden ? '' : o.textContent;",
    )
    .await;
    let readout = readout.as_str().unwrap_or_default().to_string();
    assert!(
        readout.contains("price") && readout.contains("bids at or above"),
        "{readout}"
    );

    // Times older than today carry their date.
    let old = js(&web, "return timeText(Date.now() - 3 * 86400000)").await;
    let today = js(&web, "return timeText(Date.now())").await;
    let year = js(
        &web,
        "return String(new Date(Date.now() - 3 * 86400000).getFullYear())",
    )
    .await;
    assert!(
        old.as_str().unwrap().starts_with(year.as_str().unwrap()),
        "{old}"
    );
    assert!(!today.as_str().unwrap().contains('-'), "{today}");

    // The screenshot the README shows (without the readout over the chart).
    js(&web, "depthLeave(); return null").await;
    let png = web.screenshot().await.expect("screenshot");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/page.png"), png)
        .expect("docs/page.png");

    // At 700 px wide the cancel buttons can be reached.
    web.set_window_size(700, 1000).await.expect("resize");
    let reach = eventually("the cancel button at 700 px", ctx, || async {
        let v = js(
            &web,
            "const b = document.querySelector('#orders button.cancel'); if (!b) return null;\
             b.scrollIntoView({block: 'center', inline: 'center'});\
             const r = b.getBoundingClientRect();\
             const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);\
             return {hit: hit === b, right: r.right, width: window.innerWidth,\
                     page: document.documentElement.scrollWidth};",
        )
        .await;
        (!v.is_null()).then_some(v)
    })
    .await;
    assert_eq!(
        reach["hit"], true,
        "the button is covered or clipped: {reach}"
    );
    assert!(
        reach["right"].as_f64() <= reach["width"].as_f64(),
        "{reach}"
    );
    assert!(
        reach["page"].as_f64() <= reach["width"].as_f64(),
        "the page scrolls sideways: {reach}"
    );
    web.set_window_size(1280, 1000).await.expect("resize");

    // B stops: its resting sell is shown as stale.
    b.stop();
    let ctx = || a.output();
    let stale = eventually("B's ask marked stale", ctx, || async {
        text_of(&web, "#book-asks tr.stale[data-price=\"101\"]").await
    })
    .await;
    assert!(stale.contains("stale"), "{stale}");
    let note = web.find(Locator::Css("#stale-note")).await.expect("note");
    assert!(note.is_displayed().await.unwrap_or(false));
    web.close().await.expect("close the browser");
}
