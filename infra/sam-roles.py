#!/usr/bin/env python3
"""Transforms template.yaml with the SAM translator (offline, as `sam deploy` would have
CloudFormation do) for the given parameter values, evaluates the conditions, and prints each
function role's managed policies and allowed actions as JSON:

    infra/sam-roles.py template.yaml EndpointType=RestApi EnableTracing=true
    {"ReceiverFunctionRole": {"managed": [...], "statements": [{"actions": [...], "resources": [...]}]}, ...}

With --resources first, it prints instead every resource those values create, with its type,
DeletionPolicy and evaluated properties: {"AlarmTopic": {"type": ..., "deletion": ..., "properties": ...}}.
"""
import json
import os
import sys

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "zof"}


def main():
    # The translator asks boto for a region; it needs no credentials and makes no call.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    args = sys.argv[1:]
    resources_only = args[:1] == ["--resources"]
    path, *assignments = args[1:] if resources_only else args
    with open(path) as f:
        template = yaml_parse(f.read())
    # Packaged, as `sam deploy` uploads it: code in S3.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    params.update(a.split("=", 1) for a in assignments)
    cfn = Translator({}, Parser()).translate(template, parameter_values=dict(params))
    conditions = {}

    def condition(name):
        if name not in conditions:
            conditions[name] = truthy(cfn["Conditions"][name])
        return conditions[name]

    def value(node):
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return PSEUDO.get(arg, params.get(arg, arg))
            if key == "Fn::If":
                name, yes, no = arg
                return value(yes if condition(name) else no)
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for k, v in {**PSEUDO, **params}.items():
                    text = text.replace("${" + k + "}", v)
                return text
            if key == "Fn::GetAtt":
                return "getatt:" + (arg if isinstance(arg, str) else ".".join(arg))
        if isinstance(node, dict):
            pairs = ((k, value(v)) for k, v in node.items())
            return {k: v for k, v in pairs if v != "AWS::NoValue"}
        if isinstance(node, list):
            return [v for v in (value(x) for x in node) if v != "AWS::NoValue"]
        return node

    def truthy(node):
        (key, arg), = node.items()
        if key == "Fn::Equals":
            return value(arg[0]) == value(arg[1])
        if key == "Fn::Not":
            return not truthy(arg[0])
        if key == "Fn::And":
            return all(truthy(a) for a in arg)
        if key == "Fn::Or":
            return any(truthy(a) for a in arg)
        if key == "Condition":
            return condition(arg)
        raise SystemExit(f"unknown condition function {key}")

    if resources_only:
        created = {}
        for name, resource in cfn["Resources"].items():
            if "Condition" in resource and not condition(resource["Condition"]):
                continue
            created[name] = {"type": resource["Type"], "deletion": resource.get("DeletionPolicy"),
                             "properties": value(resource.get("Properties", {}))}
        print(json.dumps(created, indent=1, sort_keys=True, default=str))
        return

    roles = {}
    for name, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        if "Condition" in resource and not condition(resource["Condition"]):
            continue
        props = value(resource["Properties"])
        statements = []
        for policy in props.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                statements.append({
                    "actions": actions if isinstance(actions, list) else [actions],
                    "resources": statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]],
                })
        roles[name] = {"managed": props.get("ManagedPolicyArns", []), "statements": statements}
    print(json.dumps(roles, indent=1, sort_keys=True))


main()
