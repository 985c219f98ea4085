"""The web dashboard in a real browser (Playwright driving Debian's chromium, headless) against a real
``tuneyard serve`` process with its scheduler: sign in, upload a dataset (drag and drop, with a
validation error shown by line first), upload a reward function, start a real SFT job on the bundled
model and watch its loss chart gain points, deploy the fine-tune and chat with it in the playground
(the answer streams in), look at cost & billing, create and revoke an API key, and check the phone
width in dark mode. Screenshots of each page go to ``test-output/screenshots/``.

``scripts/install.sh --test`` installs chromium; without it these tests fail (they never skip).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ServeProcess
from tests.deploy_helpers import stop_all, wait_job

CHROMIUM = os.environ.get("TUNEYARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
QUICKSTART = Path(__file__).resolve().parents[2] / "src" / "tuneyard" / "data"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(1, 9)]
# The machine is shared and slow: generous waits everywhere; nothing here asserts on timing.
LONG = 420_000
MEDIUM = 120_000


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("web-data")
    proc = ServeProcess(data_dir, env={"HF_HUB_OFFLINE": "1", "TUNEYARD_INFERENCE_THREADS": "1",
                                       "TUNEYARD_DEPLOYMENT_HEALTH_INTERVAL_SECONDS": "1"})
    proc.start(timeout=180)
    yield proc
    try:
        with proc.client() as c:
            stop_all(c, data_dir)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is required for the dashboard tests and was not found at {CHROMIUM}; "
                    "install it with `scripts/install.sh --test` (Debian package `chromium`)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    # Refused requests (the wrong key, a job's log before it has a runner) are part of the story;
    # what must not happen is a script error.
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    return errors


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def drop_file(page: Page, selector: str, name: str, text: str) -> None:
    """A real drop event on the drop zone, carrying a File, as a drag from the desktop does."""
    data = page.evaluate_handle("""([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, { type: "application/octet-stream" }));
        return dt;
    }""", [name, text])
    page.dispatch_event(selector, "dragenter", {"dataTransfer": data})
    page.dispatch_event(selector, "drop", {"dataTransfer": data})


def test_train_deploy_chat_and_revoke_in_the_browser(serve: ServeProcess, browser: Browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = watch_errors(page)

    # ---- sign in: a wrong key is refused, the bootstrap key works ----
    page.goto(serve.url + "/")
    expect(page.get_by_role("heading", name="Sign in to tuneyard")).to_be_visible()
    shot(page, "01-sign-in")
    page.get_by_label("API key").fill("vk_not_a_real_key_000000000000000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    page.get_by_label("API key").fill(serve.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Training jobs", level=1)).to_be_visible()
    expect(page.get_by_text("No training jobs yet")).to_be_visible()

    # ---- datasets: a bad file dropped shows the server's error by line, then a good one uploads ----
    nav(page, "Datasets")
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_visible()
    bad = "\n".join([json.dumps(SFT_ROWS[0]), '{"messages": [{"role": "user", "content": "hi"}', json.dumps(SFT_ROWS[1])])
    drop_file(page, "[data-testid=dropzone]", "broken.jsonl", bad)
    expect(page.get_by_text("broken.jsonl ·")).to_be_visible()
    page.get_by_role("button", name="Upload", exact=True).click()
    errors_list = page.get_by_role("list", name="Validation errors")
    expect(errors_list).to_contain_text("Line 2:")
    expect(errors_list).to_contain_text("not valid JSON")
    expect(errors_list.locator("code").first).to_contain_text('"content": "hi"')
    shot(page, "02-datasets-validation-error")

    page.get_by_label("Name").fill("web-sft")
    drop_file(page, "[data-testid=dropzone]", "sft.jsonl", "\n".join(json.dumps(r) for r in SFT_ROWS) + "\n")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="web-sft", level=1)).to_be_visible()
    expect(page.locator("[data-stat=format] .value")).to_have_text("chat")
    preview = page.get_by_role("table", name="Dataset preview")
    expect(preview).to_contain_text("What is 1 plus 1?")
    expect(preview).to_contain_text("1 plus 1 is 2.")
    shot(page, "03-dataset-preview")

    # ---- reward functions: upload a Python file, see it highlighted ----
    nav(page, "Reward functions")
    page.get_by_label("File to upload").set_input_files(str(QUICKSTART / "quickstart_reward.py"))
    page.get_by_label("Name").fill("sum-reward")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="sum-reward", level=1)).to_be_visible()
    source = page.get_by_label("Source of sum-reward")
    expect(source).to_contain_text("def reward(prompts, completions, answer, **kwargs):")
    expect(source.locator(".tok-kw", has_text="def")).to_be_visible()
    expect(source.locator(".tok-fn", has_text="reward")).to_be_visible()
    shot(page, "04-reward-function")

    # ---- a new SFT job: the estimate shows before submitting ----
    nav(page, "Training jobs")
    page.get_by_role("link", name="New training job").click()
    expect(page.get_by_role("heading", name="New training job")).to_be_visible()
    page.get_by_label("Method").select_option("sft")
    page.get_by_label("Dataset").select_option(label="web-sft · chat · 8 rows")
    page.get_by_label("Base model").select_option("HuggingFaceTB/SmolLM2-135M-Instruct")
    page.get_by_label("Output name").fill("web-sft-model")
    page.get_by_label("Max steps").fill("3")
    page.get_by_label("Batch size").fill("1")
    page.get_by_label("Learning rate").fill("0.0005")
    page.get_by_label("Max sequence length").fill("48")
    page.get_by_label("LoRA rank").fill("4")
    page.get_by_label("GPU type").select_option("cpu")
    estimate = page.get_by_test_id("estimate")
    expect(estimate).to_contain_text("3 steps")
    expect(page.get_by_test_id("estimate-total")).to_have_text(re.compile(r"^\$0\.\d+$"))
    expect(estimate).to_contain_text("covers this estimate")
    shot(page, "05-new-job-estimate")
    page.get_by_role("button", name="Start training").click()

    # ---- the job page: live status, logs, events, the loss chart gaining points ----
    expect(page.get_by_role("heading", name="web-sft-model", level=1)).to_be_visible()
    job_id = page.url.rsplit("/", 1)[-1]
    assert job_id.startswith("job_"), page.url
    loss = page.locator("figure[data-chart=loss] figcaption .meta")
    expect(loss).to_have_text("no points yet")  # the runner is still loading the model
    expect(page.locator("[data-stat=status] .badge")).to_have_text(re.compile("queued|provisioning|running"))
    expect(loss).to_have_text(re.compile(r"^[12] points? · last \d"), timeout=LONG)
    expect(page.locator("[data-stat=status] .badge")).to_have_text(re.compile("running|completed"))
    shot(page, "06-job-running")
    expect(loss).to_have_text(re.compile(r"^3 points · last \d"), timeout=LONG)
    expect(page.locator("figure[data-chart=loss] svg circle.pt")).to_have_count(3)
    expect(page.locator("[data-stat=status] .badge")).to_have_text("completed", timeout=LONG)
    log = page.get_by_label("Job log")
    expect(log).to_contain_text("step 3/3", timeout=MEDIUM)
    expect(log).to_contain_text("[Job completed]", timeout=MEDIUM)
    timeline = page.get_by_role("list", name="Job events")
    for event in ("job.queued", "job.running", "metrics", "checkpoint.saved", "job.completed"):
        expect(timeline.locator(f"li[data-event='{event}']").first).to_be_visible()
    expect(page.locator("figure[data-chart=learning_rate] figcaption .meta")).to_contain_text("3 points")
    expect(page.locator("figure[data-chart=tokens_per_second] figcaption .meta")).to_contain_text("3 points")
    expect(page.locator("[data-stat=cost] .value")).to_have_text(re.compile(r"^\$\d"))
    download = page.get_by_role("link", name="Download model weights")
    expect(download).to_be_visible(timeout=MEDIUM)
    weights = page.request.get(download.get_attribute("href"))
    assert weights.status == 200 and len(weights.body()) > 1000
    expect(page.get_by_role("table", name="Checkpoints")).to_contain_text("adapter_model.safetensors")
    shot(page, "07-job-completed")

    # ---- the jobs list: filters ----
    nav(page, "Training jobs")
    jobs = page.get_by_role("table", name="Training jobs")
    expect(jobs.locator(f"tr[data-job='{job_id}'] .badge")).to_have_text("completed")
    page.get_by_label("Method").select_option("dpo")
    expect(page.get_by_text("No jobs match these filters.")).to_be_visible()
    page.get_by_label("Method").select_option("")
    page.get_by_label("Status").select_option("completed")
    expect(page.get_by_role("table", name="Training jobs").locator(f"tr[data-job='{job_id}']")).to_be_visible()
    shot(page, "08-jobs-list")

    # ---- deploy the fine-tune and chat with it ----
    page.get_by_role("link", name="web-sft-model").click()
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"#/deployments/dep_\w+$"))
    expect(page.get_by_role("heading", name="web-sft-model", level=1)).to_be_visible()
    status = page.locator("[data-stat=status] .badge")
    expect(status).to_have_text("serving", timeout=LONG)
    page.get_by_label("Max tokens").fill("16")
    page.get_by_label("Temperature").fill("0")
    page.evaluate("""() => {
        window.__chatMutations = 0;
        new MutationObserver(() => { window.__chatMutations += 1; })
            .observe(document.querySelector('[role=log][aria-label=Conversation]'),
                     { childList: true, characterData: true, subtree: true });
    }""")
    page.get_by_label("Message").fill("What is 2 plus 2?")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-finish", re.compile("stop|length"), timeout=MEDIUM)
    text = answer.locator(".content").inner_text()
    assert text.strip() and text != "(empty answer)" and "⚠" not in text, text
    # Tokens arrived one chunk at a time: the bubble changed more often than a single final write would.
    assert page.evaluate("window.__chatMutations") >= 4
    expect(page.locator(".msg.user").last).to_have_text(re.compile("What is 2 plus 2"))
    requests = page.get_by_role("table", name="Request log")
    expect(requests.locator("tr[data-request]").first).to_contain_text("200", timeout=MEDIUM)
    expect(requests).to_contain_text("stream")
    expect(page.locator("figure[data-chart=latency] figcaption .meta")).to_contain_text("1 point", timeout=MEDIUM)
    expect(page.locator("[data-stat=requests] .value")).to_have_text("1")
    shot(page, "09-deployment-playground")

    nav(page, "Deployments")
    expect(page.get_by_role("table", name="Deployments").locator(".badge").first).to_have_text("serving")
    shot(page, "10-deployments")

    # ---- cost & billing ----
    nav(page, "Cost & billing")
    expect(page.get_by_role("heading", name="Cost & billing")).to_be_visible()
    expect(page.locator("[data-stat=balance] .value")).to_have_text(re.compile(r"^\$\d"))
    expect(page.locator("[data-stat=burn] .value")).to_have_text(re.compile(r"^\$0\.0*[1-9]\d*/h$"))  # the deployment
    expect(page.get_by_role("table", name="Running work")).to_contain_text("deployment")
    expect(page.locator("figure[data-chart=spend_by_gpu]")).to_contain_text("cpu")
    expect(page.locator("figure[data-chart=spend_by_provider]")).to_contain_text("local")
    expect(page.get_by_role("table", name="Transactions")).to_contain_text(f"SFT job {job_id}")
    page.get_by_label("GPU type").select_option("H100-80GB")
    page.get_by_label("Duration (minutes)").fill("120")
    expect(page.locator("[data-stat=estimate] .hint")).to_contain_text("H100-80GB × 1 · 120 min")
    expect(page.get_by_role("table", name="Providers offering H100-80GB")).to_be_visible()
    shot(page, "11-cost-billing")

    # ---- keys: create one (shown once, with a copy button), then revoke it ----
    nav(page, "Keys")
    page.get_by_label("Name").first.fill("web-test-key")
    page.get_by_role("button", name="Create API key").click()
    new_key = page.get_by_test_id("new-key").inner_text()
    assert new_key.startswith("vk_")
    expect(page.get_by_role("button", name="Copy to clipboard")).to_be_visible()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {new_key}"}) as c:
        assert c.get("/v1/me").status_code == 200
    row = page.locator("tr[data-key-name='web-test-key']")
    expect(row).to_contain_text(new_key[:8])
    shot(page, "12-keys-created")
    page.get_by_role("button", name="Revoke API key web-test-key").click()
    page.get_by_role("button", name="Revoke API key web-test-key").click()  # confirm
    expect(row).to_have_count(0)
    with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {new_key}"}) as c:
        assert c.get("/v1/me").status_code == 401
    shot(page, "13-keys-revoked")

    # ---- stop the deployment from its page ----
    nav(page, "Deployments")
    page.get_by_role("table", name="Deployments").get_by_role("link", name="web-sft-model").click()
    page.get_by_role("button", name="Stop deployment").click()
    page.get_by_role("button", name="Confirm stop").click()
    expect(page.locator("[data-stat=status] .badge")).to_have_text("stopped", timeout=MEDIUM)

    assert not errors, errors
    context.close()


def test_phone_width_in_dark_mode(serve: ServeProcess, browser: Browser):
    """Every page fits a phone screen (no sideways scrolling) and follows the dark color scheme."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark",
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = watch_errors(page)
    sign_in(page, serve.url, serve.key)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)", background  # the dark palette
    with serve.client() as c:
        job = c.get("/v1/training_jobs").json()["data"]
    pages = [("jobs", "Training jobs"), ("jobs/new", "New training job"), ("datasets", "Datasets"),
             ("deployments", "Deployments"), ("billing", "Cost & billing"), ("keys", "Keys")]
    if job:
        pages.insert(1, (f"jobs/{job[0]['id']}", job[0]["output_name"]))
    for route, heading in pages:
        page.goto(f"{serve.url}/#/{route}")
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        expect(page.get_by_text("Loading…")).to_have_count(0)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"#/{route} scrolls sideways by {overflow}px on a phone"
        shot(page, f"phone-dark-{'job' if route.startswith('jobs/job_') else route.replace('/', '-')}")
    assert not errors, errors
    context.close()


def test_cancel_a_job_from_its_page(serve: ServeProcess, browser: Browser):
    with serve.client() as c:
        ds = c.get("/v1/datasets").json()["data"][0]
        r = c.post("/v1/training_jobs", json={"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset_id": ds["id"],
                                              "method": "sft", "output_name": "to-cancel",
                                              "hyperparameters": {"max_steps": 200, "batch_size": 1, "max_length": 32}})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = watch_errors(page)
    sign_in(page, serve.url, serve.key)
    page.goto(f"{serve.url}/#/jobs/{job_id}")
    expect(page.get_by_role("heading", name="to-cancel", level=1)).to_be_visible()
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name="Confirm cancel").click()
    expect(page.locator("[data-stat=status] .badge")).to_have_text("cancelled", timeout=LONG)
    expect(page.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)
    expect(page.get_by_role("list", name="Job events").locator("li[data-event='job.cancelled']")).to_be_visible()
    expect(page.get_by_label("Job log")).to_contain_text("[Job cancelled]", timeout=MEDIUM)
    shot(page, "14-job-cancelled")
    assert not errors, errors
    context.close()


# Every visible form control has an accessible name (a <label>, aria-label or aria-labelledby) and every
# button has a name; returns the ones that do not, described.
UNLABELLED_JS = """() => {
    const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    const out = [];
    for (const el of document.querySelectorAll("input, select, textarea")) {
        if (el.type === "hidden" || el.getAttribute("aria-hidden") === "true" || !visible(el) && el.type !== "file") continue;
        if (el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) continue;
        out.push(`${el.tagName.toLowerCase()}[name=${el.name}]`);
    }
    for (const el of document.querySelectorAll("button, a.button")) {
        if (!visible(el)) continue;
        if ((el.textContent || "").trim() || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) continue;
        out.push(`${el.tagName.toLowerCase()}.${el.className}`);
    }
    return out;
}"""


def assert_labelled(page: Page) -> None:
    missing = page.evaluate(UNLABELLED_JS)
    assert not missing, f"{page.url}: controls without an accessible name: {missing}"


def ssh_key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return public + " web@test", private


def test_ssh_keys_grpo_form_and_a_base_model_deployment(serve: ServeProcess, browser: Browser):
    """The parts the long test does not reach: SSH keys added and deleted, the GRPO form with an uploaded
    reward function (estimate shown, job submitted then cancelled), the jobs list's "Load more", and a
    deployment of the bundled base model created and stopped from the deployments page, with its request
    log and metrics after one short chat. Nothing is trained."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = watch_errors(page)
    sign_in(page, serve.url, serve.key)

    # ---- SSH keys: a mismatched pair is refused with the server's message, a real pair is added, then deleted ----
    with serve.client() as c:
        spare = c.post("/v1/api_keys", json={"name": "web-spare-key"}).json()
    nav(page, "Keys")
    public, private = ssh_key_pair()
    other_public, _ = ssh_key_pair()
    ssh_form = page.get_by_role("form", name="Add an SSH key")
    ssh_form.get_by_label("Name").fill("web-gpu-vm")
    ssh_form.get_by_label("Provider").fill("lambda")
    ssh_form.get_by_label("Public key").fill(other_public)
    ssh_form.get_by_label("Private key").fill(private)
    ssh_form.get_by_role("button", name="Add SSH key").click()
    expect(ssh_form.get_by_role("alert")).to_contain_text("does not match")
    ssh_form.get_by_label("Public key").fill(public)
    ssh_form.get_by_role("button", name="Add SSH key").click()
    ssh_table = page.get_by_role("table", name="SSH keys")
    row = ssh_table.locator("tr", has_text="web-gpu-vm")
    expect(row).to_contain_text("ssh-ed25519")
    expect(row).to_contain_text("lambda")
    with serve.client() as c:
        listed = [k for k in c.get("/v1/ssh_keys").json()["data"] if k["name"] == "web-gpu-vm"]
    assert len(listed) == 1 and listed[0]["fingerprint"].startswith("SHA256:"), listed
    expect(row).to_contain_text(listed[0]["fingerprint"])
    expect(ssh_form.get_by_label("Private key")).to_have_value("")  # not left on screen
    assert_labelled(page)
    shot(page, "20-ssh-key-added")
    page.get_by_role("button", name="Delete SSH key web-gpu-vm").click()
    page.get_by_role("button", name="Delete SSH key web-gpu-vm").click()  # confirm
    expect(row).to_have_count(0)
    with serve.client() as c:
        assert c.get(f"/v1/ssh_keys/{listed[0]['id']}").status_code == 404
    shot(page, "21-ssh-key-deleted")
    page.get_by_role("button", name="Revoke API key web-spare-key").click()
    expect(page.get_by_role("button", name="Revoke API key web-spare-key")).to_have_text("Confirm revoke")
    page.get_by_role("button", name="Revoke API key web-spare-key").click()
    expect(page.locator("tr[data-key-name='web-spare-key']")).to_have_count(0)
    with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {spare['key']}"}) as c:
        assert c.get("/v1/me").status_code == 401

    # ---- GRPO: upload a reward function and a prompt dataset, fill the form, see the estimate ----
    nav(page, "Reward functions")
    page.get_by_label("File to upload").set_input_files(str(QUICKSTART / "quickstart_reward.py"))
    page.get_by_label("Name").fill("web-grpo-reward")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="web-grpo-reward", level=1)).to_be_visible()
    rf_id = page.url.rsplit("/", 1)[-1]
    with serve.client() as c:
        r = c.post("/v1/datasets", files={"file": ("grpo.jsonl", (QUICKSTART / "quickstart_grpo.jsonl").read_bytes(),
                                                   "application/jsonl")}, data={"name": "web-grpo"})
        assert r.status_code == 201, r.text
        ds = r.json()
    nav(page, "Training jobs")
    page.get_by_role("link", name="New training job").click()
    expect(page.get_by_role("heading", name="New training job")).to_be_visible()
    rewards = page.get_by_role("group", name="Reward functions")
    expect(rewards).to_be_hidden()  # SFT needs none
    page.get_by_label("Method").select_option("grpo")
    expect(rewards).to_be_visible()
    page.get_by_label("Dataset").select_option(ds["id"])
    page.get_by_label("Base model").select_option("HuggingFaceTB/SmolLM2-135M-Instruct")
    page.get_by_label("Output name").fill("web-grpo-model")
    page.get_by_label("Max steps").fill("2")
    page.get_by_label("Generations per prompt").fill("2")
    page.get_by_label("Max completion tokens").fill("8")
    page.get_by_label("GPU type").select_option("cpu")
    estimate = page.get_by_test_id("estimate")
    expect(estimate).to_contain_text("2 steps")
    expect(page.get_by_test_id("estimate-total")).to_have_text(re.compile(r"^\$0\.\d+$"))
    expect(estimate).to_contain_text("covers this estimate")
    page.get_by_role("button", name="Start training").click()  # no reward picked yet: refused in the page
    expect(page.get_by_role("alert")).to_contain_text("Pick at least one reward function")
    weight = rewards.get_by_label("Weight of web-grpo-reward")
    expect(weight).to_be_disabled()  # until the reward is picked
    rewards.get_by_label(re.compile("^web-grpo-reward")).check()
    weight.fill("0.5")
    assert_labelled(page)
    page.evaluate("document.querySelector('.toasts')?.replaceChildren()")  # earlier toasts would hide the estimate
    shot(page, "22-new-grpo-job-estimate")
    page.get_by_role("button", name="Start training").click()

    expect(page.get_by_role("heading", name="web-grpo-model", level=1)).to_be_visible()
    job_id = page.url.rsplit("/", 1)[-1]
    with serve.client() as c:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
    assert job["method"] == "grpo" and job["reward_function_ids"] == [rf_id] and job["reward_weights"] == [0.5], job
    expect(page.get_by_role("link", name=rf_id)).to_be_visible()  # the configuration names the reward
    assert job["hyperparameters"]["max_steps"] == 2, job
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name="Confirm cancel").click()
    expect(page.locator("[data-stat=status] .badge")).to_have_text("cancelled", timeout=LONG)
    shot(page, "23-grpo-job-cancelled")

    # ---- the jobs list one job per page (#/jobs?limit=1): "Load more" follows the API's cursor ----
    with serve.client() as c:
        r = c.post("/v1/training_jobs", json={"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset_id": ds["id"],
                                              "method": "grpo", "output_name": "web-grpo-second",
                                              "reward_function_ids": [rf_id], "hyperparameters": {"max_steps": 1}})
        assert r.status_code == 201, r.text
        second = r.json()["id"]
        assert c.post(f"/v1/training_jobs/{second}/cancel").status_code == 200
    page.goto(f"{serve.url}/#/jobs?limit=1")
    jobs = page.get_by_role("table", name="Training jobs")
    expect(jobs.locator("tr[data-job]")).to_have_count(1)
    expect(jobs.locator(f"tr[data-job='{second}']")).to_be_visible()
    page.get_by_role("button", name="Load more").click()
    expect(jobs.locator("tr[data-job]")).to_have_count(2)
    expect(jobs.locator(f"tr[data-job='{job_id}'] .badge")).to_have_text("cancelled")
    assert_labelled(page)
    shot(page, "24-jobs-load-more")
    page.get_by_label("Method").select_option("grpo")  # filters keep the page size
    expect(page).to_have_url(re.compile(r"#/jobs\?method=grpo&limit=1$"))
    expect(page.get_by_role("table", name="Training jobs").locator("tr[data-job]")).to_have_count(1)
    with serve.client() as c:  # nothing left running before the deployment starts
        wait_job(c, second, timeout=LONG / 1000)

    # ---- deployments: create one of the bundled base model from the form, chat once, see it logged, stop it ----
    nav(page, "Deployments")
    create = page.get_by_role("form", name="New deployment")
    create.get_by_label("Model").select_option("hf:HuggingFaceTB/SmolLM2-135M-Instruct")
    create.get_by_label("Name").fill("web-base")
    create.get_by_label("GPU type").select_option("cpu")
    create.get_by_label("Max batch size").fill("2")
    assert_labelled(page)
    shot(page, "25-deployment-create")
    create.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"#/deployments/dep_\w+$"))
    dep_id = page.url.rsplit("/", 1)[-1]
    expect(page.get_by_role("heading", name="web-base", level=1)).to_be_visible()
    expect(page.get_by_text("HuggingFaceTB/SmolLM2-135M-Instruct ·")).to_be_visible()
    status = page.locator("[data-stat=status] .badge")
    expect(status).to_have_text(re.compile("^(serving|failed)$"), timeout=LONG)  # a failure shows at once
    assert status.inner_text() == "serving", page.locator(".alert.error").all_inner_texts()
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Message").fill("Say hi.")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-finish", re.compile("stop|length"), timeout=MEDIUM)
    requests = page.get_by_role("table", name="Request log")
    expect(requests.locator("tr[data-request]")).to_have_count(1, timeout=MEDIUM)
    expect(requests.locator("tr[data-request]")).to_contain_text("200")
    expect(requests).to_contain_text("stream")
    expect(page.locator("[data-stat=requests] .value")).to_have_text("1")
    expect(page.locator("figure[data-chart=latency] figcaption .meta")).to_contain_text("1 point")
    expect(page.locator("figure[data-chart=tokens_per_second] figcaption .meta")).to_contain_text("1 point")
    expect(page.locator("figure[data-chart=latency_percentiles]")).to_contain_text("p95")
    expect(page.locator("figure[data-chart=errors]")).to_contain_text("ok (2xx)")
    assert_labelled(page)
    shot(page, "26-base-deployment-serving")
    page.get_by_role("button", name="Stop deployment").click()
    page.get_by_role("button", name="Confirm stop").click()
    expect(status).to_have_text("stopped", timeout=MEDIUM)
    expect(page.get_by_role("button", name=re.compile("Stop deployment|Confirm stop"))).to_have_count(0)
    expect(page.get_by_role("list", name="Deployment events")).to_contain_text("stopped")
    expect(requests.locator("tr[data-request]")).to_have_count(1)  # the log outlives the deployment
    shot(page, "27-base-deployment-stopped")
    nav(page, "Deployments")
    deps = page.get_by_role("table", name="Deployments")
    expect(deps.locator(f"tr[data-deployment='{dep_id}'] .badge")).to_have_text("stopped")

    # ---- the deployments list one per page: "Load more" follows the cursor, the status filter keeps the size ----
    with serve.client() as c:  # a second deployment, stopped at once (nothing needs to load)
        other = c.post("/v1/deployments", json={"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "name": "web-other",
                                                "gpu": {"type": "cpu", "count": 1}}).json()["id"]
        assert c.post(f"/v1/deployments/{other}/stop").status_code == 200
    page.goto(f"{serve.url}/#/deployments?limit=1")
    expect(deps.locator("tr[data-deployment]")).to_have_count(1)
    expect(deps.locator(f"tr[data-deployment='{other}']")).to_have_count(1)  # newest first
    page.get_by_role("button", name="Load more").click()
    expect(deps.locator(f"tr[data-deployment='{dep_id}']")).to_have_count(1)
    page.get_by_label("Status").select_option("stopped")
    expect(page).to_have_url(re.compile(r"#/deployments\?status=stopped&limit=1$"))
    expect(deps.locator("tr[data-deployment]")).to_have_count(1)
    shot(page, "28-deployments-load-more")

    # ---- phone width in dark mode: nothing scrolls sideways, and every page's controls have names ----
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme="dark")
    for route in (f"deployments/{dep_id}", "keys", "jobs/new?method=grpo", f"jobs/{job_id}", "datasets",
                  f"datasets/{ds['id']}", "rewards", "billing"):
        page.goto(f"{serve.url}/#/{route}")
        expect(page.locator("h1")).to_be_visible()
        expect(page.get_by_text("Loading…")).to_have_count(0)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"#/{route} scrolls sideways by {overflow}px on a phone"
        assert_labelled(page)
        if route.startswith(("deployments/", "keys", "jobs/new")):
            shot(page, f"phone-dark-{route.split('/')[0].split('?')[0]}{'-grpo' if 'grpo' in route else ''}")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 18, 22)"

    # ---- delete (still on a phone): a dataset a job used is refused with the server's reason; a reward goes ----
    page.goto(f"{serve.url}/#/datasets/{ds['id']}")
    expect(page.get_by_role("heading", name="web-grpo", level=1)).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm delete").click()
    expect(page.get_by_role("status").filter(has_text="cannot be deleted")).to_be_visible()
    expect(page.get_by_role("heading", name="web-grpo", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_be_enabled()  # disarmed again
    page.goto(f"{serve.url}/#/rewards/{rf_id}")
    expect(page.get_by_role("heading", name="web-grpo-reward", level=1)).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm delete").click()
    expect(page.get_by_role("heading", name="Reward functions", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="web-grpo-reward")).to_have_count(0)
    shot(page, "phone-dark-reward-deleted")
    page.goto(f"{serve.url}/#/signin")
    expect(page.get_by_role("heading", name="Sign in to tuneyard")).to_be_visible()
    assert_labelled(page)

    assert not errors, errors
    context.close()
