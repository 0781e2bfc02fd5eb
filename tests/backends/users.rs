//! The support tools (`ownid-bridge users`, see tests/users.rs) on PostgreSQL, MariaDB and
//! MongoDB.

mod common;

use common::users::*;
use common::*;
use ownid_bridge_store::outage::required_url;

#[tokio::test]
async fn postgres() {
    support_tools_work("postgres", &required_url("OWNID_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
async fn mysql() {
    let url = mysql_test_database("ownid_bridge_users_test").await;
    support_tools_work("mariadb", &url).await;
}

#[tokio::test]
async fn mongodb() {
    let url = mongodb_test_database("ownid_bridge_users_test");
    support_tools_work("mongodb", &url).await;
}
