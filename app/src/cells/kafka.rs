//! Cell 2 · Kafka topic & offsets: partitions with their low/high watermarks growing live, the
//! consumer groups with committed offsets and lag, and a browser to read records at an offset.

use leptos::prelude::*;

use super::{BrokerToggle, Cell, ErrorLine, TopicSelect, thousands};
use crate::api::{Message, TOPIC_REVIEWS, TopicInfo};
use crate::live::Live;
use crate::requests::Read;

#[component]
pub fn KafkaCell() -> impl IntoView {
    let live = Live::use_context();
    let topics = Memo::new(move |_| live.snapshot.get().map(|s| s.topics).unwrap_or_default());
    let groups = Memo::new(move |_| live.snapshot.get().map(|s| s.groups).unwrap_or_default());
    let reviews_high = move || {
        topics
            .get()
            .iter()
            .find(|t| t.name == TOPIC_REVIEWS)
            .map_or(0, TopicInfo::high_sum)
    };

    view! {
        <Cell number=2 title="Kafka topic & offsets">
            <p class="explain">
                "A topic is split into " <em>"partitions"</em>
                "; each is an append-only log where every record gets the next " <em>"offset"</em>
                ". The " <em>"high watermark"</em>
                " is the offset the next record will get, so it counts the records ever written; the low watermark is the oldest one still kept. Records with the same key always land in the same partition."
            </p>
            <div class="buttons faults">
                <BrokerToggle testid="kafka-broker-toggle" />
                <span class="muted">
                    "Stop the broker and watch the producer and the consumers wait and retry; start it again and they go on from where they were."
                </span>
            </div>
            <p class="headline">
                <span class="stat-value" data-testid="reviews-high-sum">
                    {move || thousands(reviews_high())}
                </span>
                " records in " <code>"reviews"</code> " (sum of high watermarks)"
            </p>
            <div class="topics">
                {move || {
                    topics.get().into_iter().map(|topic| view! { <TopicCard topic /> }).collect_view()
                }}
            </div>
            <h3>"Consumer groups"</h3>
            <super::groups::GroupLagTable groups=groups.into() />
            <super::groups::OffsetReset groups=groups.into() />
            <h3>"Message browser and schema"</h3>
            <MessageBrowser topics=topics.into() />
            <h3>"Live tail"</h3>
            <super::tail::TopicTail topics=topics.into() />
        </Cell>
    }
}

#[component]
fn TopicCard(topic: TopicInfo) -> impl IntoView {
    let max_high = topic
        .partitions
        .iter()
        .map(|p| p.high)
        .max()
        .unwrap_or(0)
        .max(1);
    let total = topic.high_sum();
    let rate: f64 = topic.partitions.iter().map(|p| p.rate).sum();
    let name = topic.name.clone();
    let label = topic.name.clone();
    view! {
        <div class="topic" data-topic=name>
            <div class="topic-head">
                <code>{label}</code>
                <span>{format!("{} records · {:.0}/s", thousands(total), rate)}</span>
            </div>
            <table class="partitions">
                <thead>
                    <tr>
                        <th>"Partition"</th>
                        <th>"Low"</th>
                        <th>"High"</th>
                        <th>"Records/s"</th>
                        <th class="bar-col">"Log"</th>
                    </tr>
                </thead>
                <tbody>
                    {topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let width = (p.high as f64 / max_high as f64 * 100.0).clamp(0.0, 100.0);
                            view! {
                                <tr>
                                    <td>{p.id}</td>
                                    <td>{thousands(p.low)}</td>
                                    <td class="high">{thousands(p.high)}</td>
                                    <td>{format!("{:.0}", p.rate)}</td>
                                    <td class="bar-col">
                                        <div class="bar">
                                            <div class="bar-fill" style=format!("width:{width:.1}%")></div>
                                        </div>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn MessageBrowser(topics: Signal<Vec<TopicInfo>>) -> impl IntoView {
    let topic = RwSignal::new(TOPIC_REVIEWS.to_owned());
    let partition = RwSignal::new("0".to_owned());
    let offset = RwSignal::new("0".to_owned());
    let asked = RwSignal::new(None::<String>);
    let messages = Read::<Vec<Message>>::new(move || asked.get());
    let fetch = move |_| {
        asked.set(Some(format!(
            "/api/kafka/topics/{}/messages?partition={}&offset={}&limit=10",
            topic.get(),
            partition.get().trim(),
            offset.get().trim()
        )));
    };
    view! {
        <form class="controls" on:submit=|ev| ev.prevent_default()>
            <TopicSelect topics topic name="topic" />
            <label>
                "Partition"
                <input type="number" min="0" name="partition" bind:value=partition />
            </label>
            <label>
                "From offset"
                <input type="number" min="0" name="offset" bind:value=offset />
            </label>
            <div class="buttons">
                <button class="btn" data-primary data-testid="browse" on:click=fetch>
                    "Read 10 records"
                </button>
            </div>
        </form>
        <ErrorLine error=messages />
        <table class="messages" data-testid="messages">
            <tbody>
                {move || {
                    messages
                        .answer()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|m| {
                            let excerpt: String = m.value.chars().take(160).collect();
                            view! {
                                <tr>
                                    <td class="offset">{format!("{}@{}", m.partition, m.offset)}</td>
                                    <td class="key">{m.key.unwrap_or_default()}</td>
                                    <td class="value"><code>{excerpt}</code></td>
                                </tr>
                            }
                        })
                        .collect_view()
                }}
            </tbody>
        </table>
        <super::schema::TopicSchemaView topic />
    }
}
