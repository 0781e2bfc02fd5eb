//! The support tools (`ownid-bridge users`, see tests/cli/users.rs) on PostgreSQL, MariaDB and
//! MongoDB.

use crate::common::users::*;
use crate::common::*;

#[tokio::test]
async fn postgres() {
    let _group = crate::common::exclusive("backends").await;
    let database = fresh_database("postgres", "ownid_bridge_users_test").await;
    support_tools_work("postgres", &database.url).await;
}

#[tokio::test]
async fn mysql() {
    let _group = crate::common::exclusive("backends").await;
    let url = mysql_test_database("ownid_bridge_users_test").await;
    support_tools_work("mariadb", &url).await;
}

#[tokio::test]
async fn mongodb() {
    let _group = crate::common::exclusive("backends").await;
    let url = mongodb_test_database("ownid_bridge_users_test").await;
    support_tools_work("mongodb", &url).await;
}
