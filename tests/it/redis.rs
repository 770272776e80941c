//! Several gateways on one real Redis behave as one: sign-ins, revocations,
//! codes, restarts, and Redis itself going away and coming back.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Replicas in front of the same upstream and the same Redis.
async fn replicas(redis: &RedisServer, upstream: &Upstream, n: usize) -> Vec<Gateway> {
    let mut gateways = Vec::new();
    for _ in 0..n {
        gateways.push(Gateway::start(&replica_config(redis, upstream)).await);
    }
    for gateway in &gateways {
        wait_ready(gateway).await;
    }
    gateways
}

fn replica_config(redis: &RedisServer, upstream: &Upstream) -> String {
    config_toml(
        upstream.addr,
        &format!(
            "[tokens]\nstore = \"redis\"\nredis_url = \"{}\"\ncache_secs = 10\n",
            redis.url()
        ),
    )
}

async fn readyz(gateway: &Gateway) -> (u16, Value) {
    let response = api().get(gateway.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn wait_ready(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz(gateway).await.0 != 200 {
        assert!(Instant::now() < deadline, "the gateway never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sign_in_at_one_replica_works_at_the_others_and_a_revocation_reaches_them_within_a_second() {
    let Some(redis) = RedisServer::start() else { return };
    let upstream = start_upstream().await;
    let gateways = replicas(&redis, &upstream, 3).await;
    let (a, b, c) = (&gateways[0], &gateways[1], &gateways[2]);

    // A cookie from A works at B; a token from B's token endpoint works at C.
    let browser = browser();
    let signed_in = sign_in(&browser, a, "alice", PASSWORD, "/").await;
    let cookie_token = session_token(&signed_in);
    let seen: Value = api()
        .get(b.url("/x"))
        .header("cookie", format!("authgate_session={cookie_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    let api_token = password_grant(&b.url("/management/token"), "bob").await;
    assert_eq!(bearer_status(c, "/x", &api_token).await, 200);

    // Every replica has both cached now. Revoke at A: refused everywhere within 1 s.
    for gateway in [a, b, c] {
        assert_eq!(bearer_status(gateway, "/x", &cookie_token).await, 200);
    }
    let revoked = Instant::now();
    let out = api()
        .post(a.url("/management/logout"))
        .bearer_auth(&cookie_token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    for gateway in [b, c] {
        while bearer_status(gateway, "/x", &cookie_token).await != 401 {
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "still accepted after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let response = api()
        .post(c.url("/management/revoke"))
        .form(&[("token", api_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let revoked = Instant::now();
    while bearer_status(a, "/x", &api_token).await != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_code_redeemed_at_two_replicas_at_once_succeeds_once() {
    let Some(redis) = RedisServer::start() else { return };
    let upstream = start_upstream().await;
    let gateways = replicas(&redis, &upstream, 2).await;
    for round in 0..5 {
        let page = format!(
            "/management/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&state={round}&code_challenge={}&code_challenge_method=S256",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let response = submit_sign_in(&browser(), &gateways[0].url(&page), "alice", PASSWORD).await;
        let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let redeem = |gateway: &Gateway| {
            api()
                .post(gateway.url("/management/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT_ID),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                ])
                .send()
        };
        let (one, two) = tokio::join!(redeem(&gateways[0]), redeem(&gateways[1]));
        let successes = [one.unwrap().status(), two.unwrap().status()]
            .iter()
            .filter(|s| s.is_success())
            .count();
        assert!(successes <= 1, "round {round}: the code was redeemed twice");
    }
}

#[tokio::test]
async fn redis_lost_and_back_under_traffic() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let upstream = start_upstream().await;
    let gateways = replicas(&redis, &upstream, 2).await;
    let (a, b) = (&gateways[0], &gateways[1]);
    let cached = session_token(&sign_in(&browser(), a, "alice", PASSWORD, "/").await);
    let uncached = session_token(&sign_in(&browser(), a, "bob", PASSWORD, "/").await);
    assert_eq!(bearer_status(b, "/x", &cached).await, 200, "now cached at B");

    redis.stop();
    // A cached token goes on; an uncached one and a new sign-in get a clear 503.
    assert_eq!(bearer_status(b, "/x", &cached).await, 200);
    assert_eq!(bearer_status(b, "/x", &uncached).await, 503);
    let response = sign_in(&browser(), b, "alice", PASSWORD, "/").await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("could not be saved"));
    let (status, body) = readyz(b).await;
    assert_eq!(status, 503);
    assert!(body["reason"].as_str().unwrap().contains("redis"), "{body}");
    assert_eq!(
        api().get(b.url("/healthz")).send().await.unwrap().status(),
        200,
        "alive, not ready"
    );

    redis.restart();
    wait_ready(b).await;
    wait_ready(a).await;
    assert_eq!(
        bearer_status(b, "/x", &uncached).await,
        200,
        "works again with no restart"
    );
    let fresh = session_token(&sign_in(&browser(), b, "bob", PASSWORD, "/").await);
    assert_eq!(bearer_status(a, "/x", &fresh).await, 200);
}

#[tokio::test]
async fn a_replica_restarted_keeps_every_session_and_redis_down_at_start_is_not_ready() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let upstream = start_upstream().await;
    let first = Gateway::start(&replica_config(&redis, &upstream)).await;
    wait_ready(&first).await;
    let token = session_token(&sign_in(&browser(), &first, "alice", PASSWORD, "/").await);
    drop(first);
    let second = Gateway::start(&replica_config(&redis, &upstream)).await;
    wait_ready(&second).await;
    assert_eq!(bearer_status(&second, "/x", &token).await, 200);

    redis.stop();
    let third = Gateway::start(&replica_config(&redis, &upstream)).await;
    let (status, body) = readyz(&third).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        bearer_status(&third, "/x", &token).await,
        503,
        "never a false authenticated"
    );
    redis.restart();
    wait_ready(&third).await;
    assert_eq!(bearer_status(&third, "/x", &token).await, 200);
}

#[tokio::test]
async fn throttling_counts_failures_across_replicas() {
    let Some(redis) = RedisServer::start() else { return };
    let upstream = start_upstream().await;
    let config = replica_config(&redis, &upstream).replace("[auth]\n", "[auth]\nmax_failures_per_user = 3\n");
    let (a, b) = (Gateway::start(&config).await, Gateway::start(&config).await);
    wait_ready(&a).await;
    wait_ready(&b).await;
    for gateway in [&a, &b, &a] {
        assert_eq!(
            sign_in(&browser(), gateway, "alice", "wrong", "/").await.status(),
            401
        );
    }
    let throttled = sign_in(&browser(), &b, "alice", PASSWORD, "/").await;
    assert_eq!(
        throttled.status(),
        429,
        "three failures across two replicas reach the limit of three"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(
        sign_in(&browser(), &a, "bob", PASSWORD, "/").await.status(),
        303,
        "others are not slowed"
    );
}

#[tokio::test]
async fn two_gateway_processes_on_one_redis_share_sign_ins_and_revocations() {
    let Some(redis) = RedisServer::start() else { return };
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.toml");
    std::fs::write(&config, replica_config(&redis, &upstream)).unwrap();
    let (one, two) = (start_binary(&config), start_binary(&config));
    for running in [&one, &two] {
        running.wait_for_log("listening for revocations", Duration::from_secs(5));
    }
    let response = submit_sign_in(&browser(), &one.url("/management/authorize"), "alice", PASSWORD).await;
    let token = session_token(&response);
    let at = |running: &Running| {
        let url = running.url("/x");
        let token = token.clone();
        async move { api().get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(at(&two).await, 200, "signed in at one, used at two");
    let out = api()
        .post(two.url("/management/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let revoked = Instant::now();
    while at(&one).await != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted at one after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
