//! The admin API on people: invitations (once, for an enabled user, the
//! newest only; of two accepts at once exactly one wins), and where users
//! and group members come from.

use serde_json::json;

use crate::admin_api::{call, setup, token, Setup};
use crate::common::*;

#[tokio::test]
async fn an_invitation_works_once_only_for_its_user_while_enabled() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    // A name of config.toml is not a database user's.
    let (status, problem, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"username": "carol"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users/nobody/invitation",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"username": "fay"})),
    )
    .await;
    assert_eq!(status, 201);
    let invite = || {
        call(
            &gateway,
            reqwest::Method::POST,
            "/users/fay/invitation",
            &root,
            None,
        )
    };
    let (status, first, _) = invite().await;
    assert_eq!(status, 201, "{first}");
    let (_, second, _) = invite().await;
    let (first, second) = (
        first["url"].as_str().unwrap().to_owned(),
        second["url"].as_str().unwrap().to_owned(),
    );
    let fay = browser();
    // A new invitation replaces the old one.
    assert_eq!(fay.get(&first).send().await.unwrap().status(), 400);
    assert_eq!(
        fay.get(gateway.url("/management/invitation?token=guess"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    // A disabled user's invitation does not work.
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::PATCH,
        "/users/fay",
        &root,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fay.get(&second).send().await.unwrap().status(), 400);
    call(
        &gateway,
        reqwest::Method::PATCH,
        "/users/fay",
        &root,
        Some(json!({"disabled": false})),
    )
    .await;
    let page = fay.get(&second).send().await.unwrap().text().await.unwrap();
    let fields = hidden_inputs(&page);
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
    // Without the CSRF field: the page again, nothing set.
    let forged = fay
        .post(gateway.url("/management/invitation"))
        .form(&[
            ("token", field("token").as_str()),
            ("new", "fays-own-pw"),
            ("again", "fays-own-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let accept = || {
        fay.post(gateway.url("/management/invitation"))
            .form(&[
                ("csrf", field("csrf")),
                ("token", field("token")),
                ("new", "fays-own-pw".to_owned()),
                ("again", "fays-own-pw".to_owned()),
            ])
            .send()
    };
    let (one, two) = tokio::join!(accept(), accept());
    let mut statuses = [one.unwrap().status().as_u16(), two.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 400], "two accepts at once: exactly one wins");
    let (status, body) = {
        let answer = api()
            .post(gateway.url("/management/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "fay"),
                ("password", "fays-own-pw"),
            ])
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn users_and_members_say_where_they_come_from() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    for (method, path, body) in [
        (reqwest::Method::POST, "/users", Some(json!({"username": "dana"}))),
        (reqwest::Method::POST, "/groups", Some(json!({"name": "ops"}))),
        (reqwest::Method::PUT, "/groups/ops/members/dana", None),
        (reqwest::Method::PUT, "/groups/ops/members/carol", None),
        (reqwest::Method::PUT, "/groups/ops/members/corp:erin", None),
        (reqwest::Method::PUT, "/groups/ops/members/frank", None),
    ] {
        let (status, answer, _) = call(&gateway, method, path, &root, body).await;
        assert!(status < 300, "{path}: {status} {answer}");
    }
    let (_, page, _) = call(&gateway, reqwest::Method::GET, "/users", &root, None).await;
    assert_eq!(page["users"][0]["source"], "database", "{page}");
    let config: Vec<(&str, &str)> = page["config_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap(), u["source"].as_str().unwrap()))
        .collect();
    assert_eq!(config, [("root", "config"), ("carol", "config")]);
    let carol = page["config_users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap();
    assert_eq!(
        carol["groups"],
        json!(["ops"]),
        "a config user's authgate groups are listed"
    );
    let (_, page, _) = call(&gateway, reqwest::Method::GET, "/users?search=ca", &root, None).await;
    assert_eq!(page["config_users"].as_array().unwrap().len(), 1);
    let (_, page, _) = call(&gateway, reqwest::Method::GET, "/users?offset=50", &root, None).await;
    assert!(
        page["config_users"].as_array().unwrap().is_empty(),
        "on the first page only"
    );

    let (status, members, _) = call(&gateway, reqwest::Method::GET, "/groups/ops/members", &root, None).await;
    assert_eq!(status, 200);
    let sources: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap(), m["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [
            ("carol", "config"),
            ("corp:erin", "provider"),
            ("dana", "database"),
            ("frank", "directory")
        ]
    );
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::GET,
        "/groups/nope/members",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 404);
}
