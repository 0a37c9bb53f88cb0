"""Fills the form of one operation on Spine's /docs page in headless
Chromium (through Debian's chromedriver), submits it, and prints what the
page then shows as JSON: {"status": "...", "result": "..."}.

Usage: docs_form.py URL OPERATION_ID BODY_JSON [API_KEY]
"""
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, op, body = sys.argv[1], sys.argv[2], sys.argv[3]
api_key = sys.argv[4] if len(sys.argv) > 4 else None

options = webdriver.ChromeOptions()
options.binary_location = os.popen("command -v " + os.environ.get("SPINE_TEST_CHROMIUM", "chromium")).read().strip()
for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
    options.add_argument(arg)
driver_path = os.popen("command -v " + os.environ.get("SPINE_TEST_CHROMEDRIVER", "chromedriver")).read().strip()
driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
try:
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
    text = driver.find_element(By.ID, op + "-body")
    text.clear()
    text.send_keys(body)
    if api_key is not None:
        driver.find_element(By.ID, op + "-apikey").send_keys(api_key)
    driver.find_element(By.ID, op + "-send").click()
    status = driver.find_element(By.ID, op + "-status")
    wait.until(lambda d: status.text[:1].isdigit())
    print(json.dumps({
        "status": status.text,
        "result": driver.find_element(By.ID, op + "-result").text,
        "operations": [e.get_attribute("id") for e in driver.find_elements(By.CSS_SELECTOR, "section.op")],
    }))
finally:
    driver.quit()
