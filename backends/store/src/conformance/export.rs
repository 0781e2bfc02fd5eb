//! `export_ownid_data` on every backend: every user with data, in batches no larger than asked,
//! users without data left out, and a sink's error stopping the export.

use std::collections::BTreeSet;

use super::{fresh, StoreFactory};
use crate::{StoreError, UsersMapping};

pub async fn export_hands_over_every_user_with_data_in_batches(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        let (login_id, data) = (format!("export{i}@example.com"), format!("dätä {i} 😀"));
        store.set_ownid_data(&login_id, &data, true).await.unwrap();
        expected.insert((login_id, data));
    }
    store.create_user("no-data@example.com").await.unwrap();
    store
        .set_ownid_data("empty@example.com", "", true)
        .await
        .unwrap();
    let mut batches = Vec::new();
    let total = store
        .export_ownid_data(3, &mut |rows| {
            batches.push(rows);
            Ok(())
        })
        .await
        .expect("export");
    assert_eq!(total, 7);
    assert!(
        batches
            .iter()
            .all(|batch| !batch.is_empty() && batch.len() <= 3),
        "batch sizes {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let exported: BTreeSet<_> = batches.into_iter().flatten().collect();
    assert_eq!(exported, expected);

    // The sink's error stops the export and comes back as it is.
    let mut calls = 0;
    let stopped = store
        .export_ownid_data(2, &mut |_| {
            calls += 1;
            Err(StoreError::Other("disk full".into()))
        })
        .await;
    assert!(
        matches!(&stopped, Err(StoreError::Other(message)) if message == "disk full"),
        "{stopped:?}"
    );
    assert_eq!(calls, 1);
}
